//! The corosync-qdevice ⇄ corosync-qnetd wire format (framing, TLV options, typed messages).
//!
//! Facts taken from corosync-qdevice (`qdevices/msg.h`, `tlv.h`, `msg.c`, `tlv.c`, `msgio.c`):
//!
//! * a message is `u16 type | u32 length` (big-endian) followed by `length` bytes of options;
//! * every option is a TLV `u16 type | u16 length | value`, big-endian integers;
//! * 18 message types ([`MsgType`]) and 24 option types ([`OptType`]);
//! * qnetd receives messages of at most 32 KiB (header included, `QNETD_DEFAULT_MAX_CLIENT_RECEIVE_SIZE`);
//!   bigger or unknown-typed messages are skipped and answered with a `SERVER_ERROR`;
//! * unknown options are ignored by the decoder; a known option with a wrong length or an
//!   out-of-range value is a decode error (`ERROR_DECODING_MSG`).
//!
//! Decoding never panics and never allocates more than the input's size: every allocation is
//! bounded by the bytes actually present, and the caller caps the frame at [`MAX_MSG_SIZE`].
//! Every TLV field in the typed messages is an `Option` (absent on the wire = `None`), like
//! the `*_set` flags of corosync's `struct msg_decoded`; the arbiter's core decides which are
//! required.

use std::fmt;

/// Header length: u16 message type + u32 body length.
pub const HEADER_LEN: usize = 6;
/// Largest message (header included) we accept or produce: 32 KiB, qnetd's default.
pub const MAX_MSG_SIZE: usize = 1 << 15;
/// TCP port of corosync-qnetd.
pub const DEFAULT_PORT: u16 = 5403;

macro_rules! u16_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[repr(u16)]
        pub enum $name { $($(#[$vm])* $var = $val),+ }
        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The enum value for a wire number, `None` if unknown.
            pub fn from_u16(v: u16) -> Option<Self> {
                match v { $($val => Some($name::$var),)+ _ => None }
            }
            /// The wire number.
            pub fn as_u16(self) -> u16 { self as u16 }
        }
    };
}

u16_enum!(
    /// Message types (`enum msg_type`).
    MsgType {
        Preinit = 0,
        PreinitReply = 1,
        StartTls = 2,
        Init = 3,
        InitReply = 4,
        ServerError = 5,
        SetOption = 6,
        SetOptionReply = 7,
        EchoRequest = 8,
        EchoReply = 9,
        NodeList = 10,
        NodeListReply = 11,
        AskForVote = 12,
        AskForVoteReply = 13,
        VoteInfo = 14,
        VoteInfoReply = 15,
        HeuristicsChange = 16,
        HeuristicsChangeReply = 17,
    }
);

u16_enum!(
    /// Option (TLV) types (`enum tlv_opt_type`).
    OptType {
        MsgSeqNumber = 0,
        ClusterName = 1,
        TlsSupported = 2,
        TlsClientCertRequired = 3,
        SupportedMessages = 4,
        SupportedOptions = 5,
        ReplyErrorCode = 6,
        ServerMaximumRequestSize = 7,
        ServerMaximumReplySize = 8,
        NodeId = 9,
        SupportedDecisionAlgorithms = 10,
        DecisionAlgorithm = 11,
        HeartbeatInterval = 12,
        RingId = 13,
        ConfigVersion = 14,
        DataCenterId = 15,
        NodeState = 16,
        NodeInfo = 17,
        NodeListType = 18,
        Vote = 19,
        Quorate = 20,
        TieBreaker = 21,
        Heuristics = 22,
        KeepActivePartitionTieBreaker = 23,
    }
);

u16_enum!(
    /// Reply error codes (`enum tlv_reply_error_code`), carried by INIT_REPLY and SERVER_ERROR.
    ReplyErrorCode {
        NoError = 0,
        UnsupportedNeededMessage = 1,
        UnsupportedNeededOption = 2,
        TlsRequired = 3,
        UnsupportedMessage = 4,
        MessageTooLong = 5,
        PreinitRequired = 6,
        DoesntContainRequiredOption = 7,
        UnexpectedMessage = 8,
        ErrorDecodingMsg = 9,
        InternalError = 10,
        InitRequired = 11,
        UnsupportedDecisionAlgorithm = 12,
        InvalidHeartbeatInterval = 13,
        UnsupportedDecisionAlgorithmMessage = 14,
        TieBreakerDiffersFromOtherNodes = 15,
        AlgorithmDiffersFromOtherNodes = 16,
        DuplicateNodeId = 17,
        InvalidConfigNodeList = 18,
        InvalidMembershipNodeList = 19,
    }
);

u16_enum!(
    /// Decision algorithms (`enum tlv_decision_algorithm_type`).
    DecisionAlgorithm {
        Test = 0,
        Ffsplit = 1,
        TwoNodeLms = 2,
        Lms = 3,
    }
);

/// TLS offer in PREINIT_REPLY (u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TlsSupported {
    Unsupported = 0,
    Supported = 1,
    Required = 2,
}

/// Node state inside a NODE_INFO (u8; 0 = not set is never on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeState {
    Member = 1,
    Dead = 2,
    Leaving = 3,
}

/// Which node list a NODE_LIST carries (u8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NodeListType {
    InitialConfig = 0,
    ChangedConfig = 1,
    Membership = 2,
    Quorum = 3,
}

/// The vote (u8). `Undefined` (0) is never valid on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Vote {
    Ack = 1,
    Nack = 2,
    AskLater = 3,
    WaitForReply = 4,
    NoChange = 5,
}

/// Heuristics result (u8). `Undefined` is "not sent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Heuristics {
    Pass = 1,
    Fail = 2,
}

/// Corosync ring id: the representative node id and the ring sequence (4 + 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub struct RingId {
    pub node_id: u32,
    pub seq: u64,
}

/// Tie breaker (u8 mode + u32 node id, the id meaningful only for `NodeId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TieBreaker {
    Lowest,
    Highest,
    NodeId(u32),
}

/// One node of a NODE_LIST (the nested NODE_INFO option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub node_id: u32,
    /// 0 = not set.
    pub data_center_id: u32,
    pub node_state: Option<NodeState>,
}

/// Decoding or encoding failure. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("message of {len} bytes exceeds the {max} byte limit")]
    TooLong { len: usize, max: usize },
    #[error("unsupported message type {msg_type}")]
    UnsupportedMessage { msg_type: u16, seq: Option<u32> },
    #[error("option {opt} malformed: {why}")]
    BadOption { opt: u16, why: &'static str },
    #[error("message length {declared} does not match the {actual} bytes given")]
    LengthMismatch { declared: usize, actual: usize },
}

impl WireError {
    /// The reply error code qnetd would send for this failure.
    pub fn reply_code(&self) -> ReplyErrorCode {
        match self {
            WireError::TooLong { .. } => ReplyErrorCode::MessageTooLong,
            WireError::UnsupportedMessage { .. } => ReplyErrorCode::UnsupportedMessage,
            _ => ReplyErrorCode::ErrorDecodingMsg,
        }
    }
}

/// A parsed message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw type number (may be unknown).
    pub msg_type: u16,
    /// Body length (bytes after the header).
    pub len: u32,
}

impl Header {
    /// Parse the first [`HEADER_LEN`] bytes; `None` if fewer are available.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(Header {
            msg_type: u16::from_be_bytes([buf[0], buf[1]]),
            len: u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]),
        })
    }
    /// Header + body.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
    /// Whether the whole message fits the cap (qnetd otherwise skips it and replies MESSAGE_TOO_LONG).
    pub fn within_cap(&self) -> bool {
        self.total_len() <= MAX_MSG_SIZE
    }
}

/// For a stream driver: how many bytes the first frame in `buf` occupies, once known.
/// `Ok(None)` = need more bytes; `Err(TooLong)` = the peer announced more than [`MAX_MSG_SIZE`].
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    match Header::parse(buf) {
        None => Ok(None),
        Some(h) if !h.within_cap() => Err(WireError::TooLong { len: h.total_len(), max: MAX_MSG_SIZE }),
        Some(h) if buf.len() < h.total_len() => Ok(None),
        Some(h) => Ok(Some(h.total_len())),
    }
}

/// INIT (client → server).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Init {
    pub seq: Option<u32>,
    pub supported_messages: Option<Vec<u16>>,
    pub supported_options: Option<Vec<u16>>,
    pub node_id: Option<u32>,
    /// Raw algorithm number (unknown values kept so the server can refuse them).
    pub decision_algorithm: Option<u16>,
    pub heartbeat_interval: Option<u32>,
    pub tie_breaker: Option<TieBreaker>,
    pub ring_id: Option<RingId>,
}

/// INIT_REPLY (server → client).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InitReply {
    pub seq: Option<u32>,
    pub error: Option<ReplyErrorCode>,
    pub supported_messages: Option<Vec<u16>>,
    pub supported_options: Option<Vec<u16>>,
    pub server_maximum_request_size: Option<u32>,
    pub server_maximum_reply_size: Option<u32>,
    pub supported_decision_algorithms: Option<Vec<u16>>,
}

/// NODE_LIST (client → server).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeList {
    pub seq: Option<u32>,
    pub list_type: Option<NodeListType>,
    pub ring_id: Option<RingId>,
    pub config_version: Option<u64>,
    pub quorate: Option<bool>,
    pub nodes: Vec<NodeInfo>,
    pub heuristics: Option<Heuristics>,
}

/// A typed protocol message. Every option is `Option` (absent on the wire = `None`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    Preinit { seq: Option<u32>, cluster_name: Option<String> },
    PreinitReply { seq: Option<u32>, tls: Option<TlsSupported>, client_cert_required: Option<bool> },
    StartTls { seq: Option<u32> },
    Init(Init),
    InitReply(InitReply),
    ServerError { seq: Option<u32>, error: Option<ReplyErrorCode> },
    SetOption { seq: Option<u32>, heartbeat_interval: Option<u32>, keep_active_partition: Option<bool> },
    SetOptionReply { seq: Option<u32>, heartbeat_interval: Option<u32>, keep_active_partition: Option<bool> },
    EchoRequest { seq: Option<u32> },
    EchoReply { seq: Option<u32> },
    NodeList(NodeList),
    NodeListReply { seq: Option<u32>, list_type: Option<NodeListType>, ring_id: Option<RingId>, vote: Option<Vote> },
    AskForVote { seq: Option<u32> },
    AskForVoteReply { seq: Option<u32>, ring_id: Option<RingId>, vote: Option<Vote> },
    VoteInfo { seq: Option<u32>, ring_id: Option<RingId>, vote: Option<Vote> },
    VoteInfoReply { seq: Option<u32> },
    HeuristicsChange { seq: Option<u32>, heuristics: Option<Heuristics> },
    HeuristicsChangeReply { seq: Option<u32>, ring_id: Option<RingId>, heuristics: Option<Heuristics>, vote: Option<Vote> },
}

/// All options of one message, decoded generically (like corosync's `struct msg_decoded`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Opts {
    seq: Option<u32>,
    cluster_name: Option<String>,
    tls: Option<TlsSupported>,
    client_cert_required: Option<bool>,
    supported_messages: Option<Vec<u16>>,
    supported_options: Option<Vec<u16>>,
    error: Option<ReplyErrorCode>,
    max_request: Option<u32>,
    max_reply: Option<u32>,
    node_id: Option<u32>,
    supported_algorithms: Option<Vec<u16>>,
    algorithm: Option<u16>,
    heartbeat_interval: Option<u32>,
    ring_id: Option<RingId>,
    config_version: Option<u64>,
    nodes: Vec<NodeInfo>,
    list_type: Option<NodeListType>,
    vote: Option<Vote>,
    quorate: Option<bool>,
    tie_breaker: Option<TieBreaker>,
    heuristics: Option<Heuristics>,
    keep_active_partition: Option<bool>,
}

impl Message {
    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Preinit { .. } => MsgType::Preinit,
            Message::PreinitReply { .. } => MsgType::PreinitReply,
            Message::StartTls { .. } => MsgType::StartTls,
            Message::Init(_) => MsgType::Init,
            Message::InitReply(_) => MsgType::InitReply,
            Message::ServerError { .. } => MsgType::ServerError,
            Message::SetOption { .. } => MsgType::SetOption,
            Message::SetOptionReply { .. } => MsgType::SetOptionReply,
            Message::EchoRequest { .. } => MsgType::EchoRequest,
            Message::EchoReply { .. } => MsgType::EchoReply,
            Message::NodeList(_) => MsgType::NodeList,
            Message::NodeListReply { .. } => MsgType::NodeListReply,
            Message::AskForVote { .. } => MsgType::AskForVote,
            Message::AskForVoteReply { .. } => MsgType::AskForVoteReply,
            Message::VoteInfo { .. } => MsgType::VoteInfo,
            Message::VoteInfoReply { .. } => MsgType::VoteInfoReply,
            Message::HeuristicsChange { .. } => MsgType::HeuristicsChange,
            Message::HeuristicsChangeReply { .. } => MsgType::HeuristicsChangeReply,
        }
    }

    /// The message sequence number, if present.
    pub fn seq(&self) -> Option<u32> {
        match self {
            Message::Preinit { seq, .. }
            | Message::PreinitReply { seq, .. }
            | Message::StartTls { seq }
            | Message::ServerError { seq, .. }
            | Message::SetOption { seq, .. }
            | Message::SetOptionReply { seq, .. }
            | Message::EchoRequest { seq }
            | Message::EchoReply { seq }
            | Message::NodeListReply { seq, .. }
            | Message::AskForVote { seq }
            | Message::AskForVoteReply { seq, .. }
            | Message::VoteInfo { seq, .. }
            | Message::VoteInfoReply { seq }
            | Message::HeuristicsChange { seq, .. }
            | Message::HeuristicsChangeReply { seq, .. } => *seq,
            Message::Init(m) => m.seq,
            Message::InitReply(m) => m.seq,
            Message::NodeList(m) => m.seq,
        }
    }

    /// SERVER_ERROR with a sequence number.
    pub fn server_error(seq: Option<u32>, error: ReplyErrorCode) -> Message {
        Message::ServerError { seq, error: Some(error) }
    }

    /// VOTE_INFO push.
    pub fn vote_info(seq: u32, ring_id: RingId, vote: Vote) -> Message {
        Message::VoteInfo { seq: Some(seq), ring_id: Some(ring_id), vote: Some(vote) }
    }

    /// Encode into one frame. Fails only if the result would exceed [`MAX_MSG_SIZE`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut o = Opts::default();
        match self.clone() {
            Message::Preinit { seq, cluster_name } => {
                o.seq = seq;
                o.cluster_name = cluster_name;
            }
            Message::PreinitReply { seq, tls, client_cert_required } => {
                o.seq = seq;
                o.tls = tls;
                o.client_cert_required = client_cert_required;
            }
            Message::StartTls { seq }
            | Message::EchoRequest { seq }
            | Message::EchoReply { seq }
            | Message::AskForVote { seq }
            | Message::VoteInfoReply { seq } => o.seq = seq,
            Message::Init(m) => {
                o.seq = m.seq;
                o.supported_messages = m.supported_messages;
                o.supported_options = m.supported_options;
                o.node_id = m.node_id;
                o.algorithm = m.decision_algorithm;
                o.heartbeat_interval = m.heartbeat_interval;
                o.tie_breaker = m.tie_breaker;
                o.ring_id = m.ring_id;
            }
            Message::InitReply(m) => {
                o.seq = m.seq;
                o.error = m.error;
                o.supported_messages = m.supported_messages;
                o.supported_options = m.supported_options;
                o.max_request = m.server_maximum_request_size;
                o.max_reply = m.server_maximum_reply_size;
                o.supported_algorithms = m.supported_decision_algorithms;
            }
            Message::ServerError { seq, error } => {
                o.seq = seq;
                o.error = error;
            }
            Message::SetOption { seq, heartbeat_interval, keep_active_partition }
            | Message::SetOptionReply { seq, heartbeat_interval, keep_active_partition } => {
                o.seq = seq;
                o.heartbeat_interval = heartbeat_interval;
                o.keep_active_partition = keep_active_partition;
            }
            Message::NodeList(m) => {
                o.seq = m.seq;
                o.list_type = m.list_type;
                o.ring_id = m.ring_id;
                o.config_version = m.config_version;
                o.quorate = m.quorate;
                o.nodes = m.nodes;
                o.heuristics = m.heuristics;
            }
            Message::NodeListReply { seq, list_type, ring_id, vote } => {
                o.seq = seq;
                o.list_type = list_type;
                o.ring_id = ring_id;
                o.vote = vote;
            }
            Message::AskForVoteReply { seq, ring_id, vote } | Message::VoteInfo { seq, ring_id, vote } => {
                o.seq = seq;
                o.ring_id = ring_id;
                o.vote = vote;
            }
            Message::HeuristicsChange { seq, heuristics } => {
                o.seq = seq;
                o.heuristics = heuristics;
            }
            Message::HeuristicsChangeReply { seq, ring_id, heuristics, vote } => {
                o.seq = seq;
                o.ring_id = ring_id;
                o.heuristics = heuristics;
                o.vote = vote;
            }
        }
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.msg_type().as_u16().to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        o.write(&mut out)?;
        if out.len() > MAX_MSG_SIZE {
            return Err(WireError::TooLong { len: out.len(), max: MAX_MSG_SIZE });
        }
        let body = (out.len() - HEADER_LEN) as u32;
        out[2..6].copy_from_slice(&body.to_be_bytes());
        Ok(out)
    }

    /// Decode exactly one frame (header + body). `buf` longer than [`MAX_MSG_SIZE`] is refused
    /// before anything is parsed.
    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        if buf.len() > MAX_MSG_SIZE {
            return Err(WireError::TooLong { len: buf.len(), max: MAX_MSG_SIZE });
        }
        let h = Header::parse(buf).ok_or(WireError::Truncated { need: HEADER_LEN, have: buf.len() })?;
        if !h.within_cap() {
            return Err(WireError::TooLong { len: h.total_len(), max: MAX_MSG_SIZE });
        }
        if h.total_len() != buf.len() {
            if h.total_len() > buf.len() {
                return Err(WireError::Truncated { need: h.total_len(), have: buf.len() });
            }
            return Err(WireError::LengthMismatch { declared: h.total_len(), actual: buf.len() });
        }
        let o = Opts::read(&buf[HEADER_LEN..])?;
        let ty = match MsgType::from_u16(h.msg_type) {
            Some(t) => t,
            None => return Err(WireError::UnsupportedMessage { msg_type: h.msg_type, seq: o.seq }),
        };
        let seq = o.seq;
        Ok(match ty {
            MsgType::Preinit => Message::Preinit { seq, cluster_name: o.cluster_name },
            MsgType::PreinitReply => Message::PreinitReply { seq, tls: o.tls, client_cert_required: o.client_cert_required },
            MsgType::StartTls => Message::StartTls { seq },
            MsgType::Init => Message::Init(Init {
                seq,
                supported_messages: o.supported_messages,
                supported_options: o.supported_options,
                node_id: o.node_id,
                decision_algorithm: o.algorithm,
                heartbeat_interval: o.heartbeat_interval,
                tie_breaker: o.tie_breaker,
                ring_id: o.ring_id,
            }),
            MsgType::InitReply => Message::InitReply(InitReply {
                seq,
                error: o.error,
                supported_messages: o.supported_messages,
                supported_options: o.supported_options,
                server_maximum_request_size: o.max_request,
                server_maximum_reply_size: o.max_reply,
                supported_decision_algorithms: o.supported_algorithms,
            }),
            MsgType::ServerError => Message::ServerError { seq, error: o.error },
            MsgType::SetOption => Message::SetOption {
                seq,
                heartbeat_interval: o.heartbeat_interval,
                keep_active_partition: o.keep_active_partition,
            },
            MsgType::SetOptionReply => Message::SetOptionReply {
                seq,
                heartbeat_interval: o.heartbeat_interval,
                keep_active_partition: o.keep_active_partition,
            },
            MsgType::EchoRequest => Message::EchoRequest { seq },
            MsgType::EchoReply => Message::EchoReply { seq },
            MsgType::NodeList => Message::NodeList(NodeList {
                seq,
                list_type: o.list_type,
                ring_id: o.ring_id,
                config_version: o.config_version,
                quorate: o.quorate,
                nodes: o.nodes,
                heuristics: o.heuristics,
            }),
            MsgType::NodeListReply => Message::NodeListReply { seq, list_type: o.list_type, ring_id: o.ring_id, vote: o.vote },
            MsgType::AskForVote => Message::AskForVote { seq },
            MsgType::AskForVoteReply => Message::AskForVoteReply { seq, ring_id: o.ring_id, vote: o.vote },
            MsgType::VoteInfo => Message::VoteInfo { seq, ring_id: o.ring_id, vote: o.vote },
            MsgType::VoteInfoReply => Message::VoteInfoReply { seq },
            MsgType::HeuristicsChange => Message::HeuristicsChange { seq, heuristics: o.heuristics },
            MsgType::HeuristicsChangeReply => Message::HeuristicsChangeReply {
                seq,
                ring_id: o.ring_id,
                heuristics: o.heuristics,
                vote: o.vote,
            },
        })
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

// ---- TLV writing -------------------------------------------------------------------------

fn put(out: &mut Vec<u8>, opt: OptType, value: &[u8]) -> Result<(), WireError> {
    if value.len() > u16::MAX as usize || out.len() + 4 + value.len() > MAX_MSG_SIZE {
        return Err(WireError::TooLong { len: out.len() + 4 + value.len(), max: MAX_MSG_SIZE });
    }
    out.extend_from_slice(&opt.as_u16().to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

fn u16_array(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn ring_bytes(r: &RingId) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&r.node_id.to_be_bytes());
    b[4..].copy_from_slice(&r.seq.to_be_bytes());
    b
}

impl Opts {
    /// Options in ascending type order (the decoder is order-independent, like corosync's).
    fn write(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        if let Some(s) = self.seq {
            put(out, OptType::MsgSeqNumber, &s.to_be_bytes())?;
        }
        if let Some(n) = &self.cluster_name {
            put(out, OptType::ClusterName, n.as_bytes())?;
        }
        if let Some(t) = self.tls {
            put(out, OptType::TlsSupported, &[t as u8])?;
        }
        if let Some(c) = self.client_cert_required {
            put(out, OptType::TlsClientCertRequired, &[c as u8])?;
        }
        if let Some(v) = &self.supported_messages {
            put(out, OptType::SupportedMessages, &u16_array(v))?;
        }
        if let Some(v) = &self.supported_options {
            put(out, OptType::SupportedOptions, &u16_array(v))?;
        }
        if let Some(e) = self.error {
            put(out, OptType::ReplyErrorCode, &e.as_u16().to_be_bytes())?;
        }
        if let Some(v) = self.max_request {
            put(out, OptType::ServerMaximumRequestSize, &v.to_be_bytes())?;
        }
        if let Some(v) = self.max_reply {
            put(out, OptType::ServerMaximumReplySize, &v.to_be_bytes())?;
        }
        if let Some(v) = self.node_id {
            put(out, OptType::NodeId, &v.to_be_bytes())?;
        }
        if let Some(v) = &self.supported_algorithms {
            put(out, OptType::SupportedDecisionAlgorithms, &u16_array(v))?;
        }
        if let Some(v) = self.algorithm {
            put(out, OptType::DecisionAlgorithm, &v.to_be_bytes())?;
        }
        if let Some(v) = self.heartbeat_interval {
            put(out, OptType::HeartbeatInterval, &v.to_be_bytes())?;
        }
        if let Some(r) = &self.ring_id {
            put(out, OptType::RingId, &ring_bytes(r))?;
        }
        if let Some(v) = self.config_version {
            put(out, OptType::ConfigVersion, &v.to_be_bytes())?;
        }
        for n in &self.nodes {
            let mut sub = Vec::with_capacity(20);
            sub.extend_from_slice(&OptType::NodeId.as_u16().to_be_bytes());
            sub.extend_from_slice(&4u16.to_be_bytes());
            sub.extend_from_slice(&n.node_id.to_be_bytes());
            if n.data_center_id != 0 {
                sub.extend_from_slice(&OptType::DataCenterId.as_u16().to_be_bytes());
                sub.extend_from_slice(&4u16.to_be_bytes());
                sub.extend_from_slice(&n.data_center_id.to_be_bytes());
            }
            if let Some(s) = n.node_state {
                sub.extend_from_slice(&OptType::NodeState.as_u16().to_be_bytes());
                sub.extend_from_slice(&1u16.to_be_bytes());
                sub.push(s as u8);
            }
            put(out, OptType::NodeInfo, &sub)?;
        }
        if let Some(v) = self.list_type {
            put(out, OptType::NodeListType, &[v as u8])?;
        }
        if let Some(v) = self.vote {
            put(out, OptType::Vote, &[v as u8])?;
        }
        if let Some(v) = self.quorate {
            put(out, OptType::Quorate, &[v as u8])?;
        }
        if let Some(t) = self.tie_breaker {
            let (mode, id) = match t {
                TieBreaker::Lowest => (1u8, 0u32),
                TieBreaker::Highest => (2, 0),
                TieBreaker::NodeId(id) => (3, id),
            };
            let mut b = [0u8; 5];
            b[0] = mode;
            b[1..].copy_from_slice(&id.to_be_bytes());
            put(out, OptType::TieBreaker, &b)?;
        }
        if let Some(h) = self.heuristics {
            put(out, OptType::Heuristics, &[h as u8])?;
        }
        if let Some(k) = self.keep_active_partition {
            put(out, OptType::KeepActivePartitionTieBreaker, &[k as u8])?;
        }
        Ok(())
    }

    fn read(body: &[u8]) -> Result<Opts, WireError> {
        let mut o = Opts::default();
        for item in TlvIter::new(body) {
            let (ty, v) = item?;
            let Some(opt) = OptType::from_u16(ty) else { continue };
            let bad = |why| WireError::BadOption { opt: ty, why };
            match opt {
                OptType::MsgSeqNumber => o.seq = Some(be_u32(v).ok_or(bad("expected 4 bytes"))?),
                OptType::ClusterName => {
                    let s = std::str::from_utf8(v).map_err(|_| bad("cluster name is not UTF-8"))?;
                    o.cluster_name = Some(s.to_string());
                }
                OptType::TlsSupported => {
                    o.tls = Some(match be_u8(v).ok_or(bad("expected 1 byte"))? {
                        0 => TlsSupported::Unsupported,
                        1 => TlsSupported::Supported,
                        2 => TlsSupported::Required,
                        _ => return Err(bad("tls_supported out of range")),
                    })
                }
                OptType::TlsClientCertRequired => {
                    o.client_cert_required = Some(be_u8(v).ok_or(bad("expected 1 byte"))? != 0)
                }
                OptType::SupportedMessages => o.supported_messages = Some(be_u16_array(v).ok_or(bad("odd length"))?),
                OptType::SupportedOptions => o.supported_options = Some(be_u16_array(v).ok_or(bad("odd length"))?),
                OptType::ReplyErrorCode => {
                    let c = be_u16(v).ok_or(bad("expected 2 bytes"))?;
                    o.error = Some(ReplyErrorCode::from_u16(c).unwrap_or(ReplyErrorCode::InternalError));
                }
                OptType::ServerMaximumRequestSize => o.max_request = Some(be_u32(v).ok_or(bad("expected 4 bytes"))?),
                OptType::ServerMaximumReplySize => o.max_reply = Some(be_u32(v).ok_or(bad("expected 4 bytes"))?),
                OptType::NodeId => o.node_id = Some(be_u32(v).ok_or(bad("expected 4 bytes"))?),
                OptType::SupportedDecisionAlgorithms => {
                    o.supported_algorithms = Some(be_u16_array(v).ok_or(bad("odd length"))?)
                }
                OptType::DecisionAlgorithm => o.algorithm = Some(be_u16(v).ok_or(bad("expected 2 bytes"))?),
                OptType::HeartbeatInterval => o.heartbeat_interval = Some(be_u32(v).ok_or(bad("expected 4 bytes"))?),
                OptType::RingId => {
                    if v.len() != 12 {
                        return Err(bad("expected 12 bytes"));
                    }
                    o.ring_id = Some(RingId {
                        node_id: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        seq: u64::from_be_bytes([v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]]),
                    });
                }
                OptType::ConfigVersion => o.config_version = Some(be_u64(v).ok_or(bad("expected 8 bytes"))?),
                // Only meaningful nested in NODE_INFO; ignored at top level like corosync does.
                OptType::DataCenterId | OptType::NodeState => {}
                OptType::NodeInfo => o.nodes.push(read_node_info(v)?),
                OptType::NodeListType => {
                    o.list_type = Some(match be_u8(v).ok_or(bad("expected 1 byte"))? {
                        0 => NodeListType::InitialConfig,
                        1 => NodeListType::ChangedConfig,
                        2 => NodeListType::Membership,
                        3 => NodeListType::Quorum,
                        _ => return Err(bad("node list type out of range")),
                    })
                }
                OptType::Vote => {
                    o.vote = Some(match be_u8(v).ok_or(bad("expected 1 byte"))? {
                        1 => Vote::Ack,
                        2 => Vote::Nack,
                        3 => Vote::AskLater,
                        4 => Vote::WaitForReply,
                        5 => Vote::NoChange,
                        _ => return Err(bad("vote out of range")),
                    })
                }
                OptType::Quorate => {
                    o.quorate = Some(match be_u8(v).ok_or(bad("expected 1 byte"))? {
                        0 => false,
                        1 => true,
                        _ => return Err(bad("quorate out of range")),
                    })
                }
                OptType::TieBreaker => {
                    if v.len() != 5 {
                        return Err(bad("expected 5 bytes"));
                    }
                    let id = u32::from_be_bytes([v[1], v[2], v[3], v[4]]);
                    o.tie_breaker = Some(match v[0] {
                        1 => TieBreaker::Lowest,
                        2 => TieBreaker::Highest,
                        3 => TieBreaker::NodeId(id),
                        _ => return Err(bad("tie breaker mode out of range")),
                    });
                }
                OptType::Heuristics => {
                    o.heuristics = Some(match be_u8(v).ok_or(bad("expected 1 byte"))? {
                        1 => Heuristics::Pass,
                        2 => Heuristics::Fail,
                        _ => return Err(bad("heuristics out of range")),
                    })
                }
                OptType::KeepActivePartitionTieBreaker => {
                    o.keep_active_partition = Some(match be_u8(v).ok_or(bad("expected 1 byte"))? {
                        0 => false,
                        1 => true,
                        _ => return Err(bad("keep_active_partition out of range")),
                    })
                }
            }
        }
        Ok(o)
    }
}

fn read_node_info(v: &[u8]) -> Result<NodeInfo, WireError> {
    let mut n = NodeInfo { node_id: 0, data_center_id: 0, node_state: None };
    let opt = OptType::NodeInfo.as_u16();
    for item in TlvIter::new(v) {
        let (ty, d) = item?;
        let bad = |why| WireError::BadOption { opt, why };
        match OptType::from_u16(ty) {
            Some(OptType::NodeId) => n.node_id = be_u32(d).ok_or(bad("node id: expected 4 bytes"))?,
            Some(OptType::DataCenterId) => n.data_center_id = be_u32(d).ok_or(bad("data center id: expected 4 bytes"))?,
            Some(OptType::NodeState) => {
                n.node_state = Some(match be_u8(d).ok_or(bad("node state: expected 1 byte"))? {
                    1 => NodeState::Member,
                    2 => NodeState::Dead,
                    3 => NodeState::Leaving,
                    _ => return Err(bad("node state out of range")),
                })
            }
            _ => {}
        }
    }
    if n.node_id == 0 {
        return Err(WireError::BadOption { opt, why: "node info without a node id" });
    }
    Ok(n)
}

/// Iterator over `(type, value)` TLVs; yields an error (once) on a truncated TLV.
struct TlvIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> TlvIter<'a> {
    fn new(buf: &'a [u8]) -> Self {
        TlvIter { buf, pos: 0, failed: false }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<(u16, &'a [u8]), WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < 4 {
            self.failed = true;
            return Some(Err(WireError::Truncated { need: 4, have: rest.len() }));
        }
        let ty = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            self.failed = true;
            return Some(Err(WireError::Truncated { need: 4 + len, have: rest.len() }));
        }
        self.pos += 4 + len;
        Some(Ok((ty, &rest[4..4 + len])))
    }
}

fn be_u8(v: &[u8]) -> Option<u8> {
    match v {
        [a] => Some(*a),
        _ => None,
    }
}
fn be_u16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.try_into().ok()?))
}
fn be_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}
fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}
fn be_u16_array(v: &[u8]) -> Option<Vec<u16>> {
    if !v.len().is_multiple_of(2) {
        return None;
    }
    Some(v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect())
}

/// Every message type number, for INIT / INIT_REPLY `supported_messages`.
pub fn all_msg_types() -> Vec<u16> {
    MsgType::ALL.iter().map(|t| t.as_u16()).collect()
}

/// Every option type number, for INIT / INIT_REPLY `supported_options`.
pub fn all_opt_types() -> Vec<u16> {
    OptType::ALL.iter().map(|t| t.as_u16()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Message> {
        let ring = RingId { node_id: 1, seq: 0x1_0000_0004 };
        vec![
            Message::Preinit { seq: Some(1), cluster_name: Some("lab".into()) },
            Message::PreinitReply { seq: Some(1), tls: Some(TlsSupported::Required), client_cert_required: Some(true) },
            Message::StartTls { seq: Some(2) },
            Message::Init(Init {
                seq: Some(3),
                supported_messages: Some(all_msg_types()),
                supported_options: Some(all_opt_types()),
                node_id: Some(2),
                decision_algorithm: Some(DecisionAlgorithm::Ffsplit.as_u16()),
                heartbeat_interval: Some(8000),
                tie_breaker: Some(TieBreaker::NodeId(7)),
                ring_id: Some(ring),
            }),
            Message::InitReply(InitReply {
                seq: Some(3),
                error: Some(ReplyErrorCode::NoError),
                supported_messages: Some(all_msg_types()),
                supported_options: Some(all_opt_types()),
                server_maximum_request_size: Some(32768),
                server_maximum_reply_size: Some(32768),
                supported_decision_algorithms: Some(vec![0, 1, 2, 3]),
            }),
            Message::server_error(Some(9), ReplyErrorCode::TlsRequired),
            Message::SetOption { seq: Some(4), heartbeat_interval: Some(1000), keep_active_partition: Some(true) },
            Message::SetOptionReply { seq: Some(4), heartbeat_interval: Some(1000), keep_active_partition: Some(false) },
            Message::EchoRequest { seq: Some(5) },
            Message::EchoReply { seq: Some(5) },
            Message::NodeList(NodeList {
                seq: Some(6),
                list_type: Some(NodeListType::Membership),
                ring_id: Some(ring),
                config_version: Some(42),
                quorate: Some(true),
                nodes: vec![
                    NodeInfo { node_id: 1, data_center_id: 0, node_state: None },
                    NodeInfo { node_id: 2, data_center_id: 3, node_state: Some(NodeState::Member) },
                ],
                heuristics: Some(Heuristics::Pass),
            }),
            Message::NodeListReply { seq: Some(6), list_type: Some(NodeListType::Quorum), ring_id: Some(ring), vote: Some(Vote::Ack) },
            Message::AskForVote { seq: Some(7) },
            Message::AskForVoteReply { seq: Some(7), ring_id: Some(ring), vote: Some(Vote::Nack) },
            Message::vote_info(8, ring, Vote::WaitForReply),
            Message::VoteInfoReply { seq: Some(8) },
            Message::HeuristicsChange { seq: Some(9), heuristics: Some(Heuristics::Fail) },
            Message::HeuristicsChangeReply { seq: Some(9), ring_id: Some(ring), heuristics: Some(Heuristics::Fail), vote: Some(Vote::NoChange) },
        ]
    }

    #[test]
    fn numbering_matches_corosync() {
        assert_eq!(MsgType::ALL.len(), 18);
        assert_eq!(OptType::ALL.len(), 24);
        assert_eq!(MsgType::HeuristicsChangeReply.as_u16(), 17);
        assert_eq!(OptType::KeepActivePartitionTieBreaker.as_u16(), 23);
        assert_eq!(ReplyErrorCode::InvalidMembershipNodeList.as_u16(), 19);
        assert_eq!(DecisionAlgorithm::Lms.as_u16(), 3);
    }

    #[test]
    fn every_message_round_trips() {
        let s = samples();
        assert_eq!(s.len(), 18, "one sample per message type");
        for m in s {
            let bytes = m.encode().unwrap();
            assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            let back = Message::decode(&bytes).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn preinit_bytes_are_exact() {
        // type 0, length 15: seq TLV (0,4,1) + cluster name TLV (1,3,"lab")
        let b = Message::Preinit { seq: Some(1), cluster_name: Some("lab".into()) }.encode().unwrap();
        assert_eq!(
            b,
            vec![0, 0, 0, 0, 0, 15, 0, 0, 0, 4, 0, 0, 0, 1, 0, 1, 0, 3, b'l', b'a', b'b']
        );
    }

    #[test]
    fn unknown_options_are_ignored_unknown_types_refused() {
        let mut b = Message::EchoRequest { seq: Some(3) }.encode().unwrap();
        b.extend_from_slice(&[0x01, 0x00, 0, 2, 9, 9]); // option 256, unknown
        let n = (b.len() - HEADER_LEN) as u32;
        b[2..6].copy_from_slice(&n.to_be_bytes());
        assert_eq!(Message::decode(&b).unwrap(), Message::EchoRequest { seq: Some(3) });
        b[0..2].copy_from_slice(&99u16.to_be_bytes());
        assert_eq!(Message::decode(&b), Err(WireError::UnsupportedMessage { msg_type: 99, seq: Some(3) }));
    }

    #[test]
    fn oversized_and_truncated_are_errors() {
        let hdr = [0u8, 8, 0, 1, 0, 0];
        assert!(matches!(frame_len(&hdr), Err(WireError::TooLong { .. })));
        assert!(matches!(Message::decode(&hdr), Err(WireError::TooLong { .. })));
        assert_eq!(frame_len(&[0, 8, 0]), Ok(None));
        let b = Message::EchoRequest { seq: Some(1) }.encode().unwrap();
        assert!(matches!(Message::decode(&b[..b.len() - 1]), Err(WireError::Truncated { .. })));
        let big = Message::Preinit { seq: None, cluster_name: Some("x".repeat(40_000)) };
        assert!(matches!(big.encode(), Err(WireError::TooLong { .. })));
        // bad vote value
        let mut v = Message::vote_info(1, RingId::default(), Vote::Ack).encode().unwrap();
        let pos = v.windows(4).position(|w| w == [0, 19, 0, 1]).unwrap();
        v[pos + 4] = 0;
        assert!(matches!(Message::decode(&v), Err(WireError::BadOption { opt: 19, .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = frame_len(&data);
            let _ = Message::decode(&data);
        }

        #[test]
        fn decoder_never_panics_on_valid_headers(ty in 0u16..20, body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut b = ty.to_be_bytes().to_vec();
            b.extend_from_slice(&(body.len() as u32).to_be_bytes());
            b.extend_from_slice(&body);
            if let Ok(m) = Message::decode(&b) {
                // anything that decodes re-encodes within the cap and decodes to the same
                let again = m.encode().unwrap();
                prop_assert!(again.len() <= MAX_MSG_SIZE);
                prop_assert_eq!(Message::decode(&again).unwrap(), m);
            }
        }

        #[test]
        fn mutated_valid_messages_never_panic(idx in 0usize..18, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut b = samples()[idx].encode().unwrap();
            for (p, x) in flips { let n = b.len(); b[p % n] ^= x; }
            let _ = Message::decode(&b);
        }
    }
}
