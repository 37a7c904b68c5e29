//! The HA configuration model: what ha-manager reads from `/etc/pve/ha/{resources,groups,rules}.cfg`
//! and `datacenter.cfg`, and what rgmanager's `<rm>` maps onto. Readers (`ha::config`) fill it; the
//! core (`ha::manager`, `ha::lrm`) and the simulator only read it.
use std::collections::{BTreeMap, BTreeSet};

/// Where a value came from: 1-based line and column in its file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

/// The state an admin requested for a service (`state` in resources.cfg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Started,
    Stopped,
    Disabled,
    Ignored,
}

impl RequestState {
    /// `enabled` is the old spelling of `started`; a missing state means `disabled` in the
    /// simulator's JSON but `started` in resources.cfg (the caller passes its default).
    pub fn parse(s: &str) -> Option<RequestState> {
        Some(match s {
            "started" | "enabled" => RequestState::Started,
            "stopped" => RequestState::Stopped,
            "disabled" => RequestState::Disabled,
            "ignored" => RequestState::Ignored,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Started => "started",
            RequestState::Stopped => "stopped",
            RequestState::Disabled => "disabled",
            RequestState::Ignored => "ignored",
        }
    }
}

/// One HA resource (`vm:100`, `ct:200`; the simulator also knows `fa:` failing services).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServiceConf {
    pub sid: String,
    /// `vm`, `ct` or `fa`.
    pub kind: String,
    /// The id after the colon.
    pub name: String,
    /// The node the service is (to be) on.
    pub node: String,
    pub state: RequestState,
    pub group: Option<String>,
    pub max_restart: u32,
    pub max_relocate: u32,
    /// false when the service's group had `nofailback` (5.x: the service's own `failback 0`).
    pub failback: bool,
    pub comment: Option<String>,
    /// A guest config lock (`backup`, `migrate`, ...), if any.
    pub lock: Option<String>,
    /// twonode: the DRBD resources this service's storage lives on. Recovery waits until they are
    /// UpToDate on the target, and promotes them there only.
    pub drbd: Vec<String>,
    pub span: Span,
}

impl ServiceConf {
    /// A service with ha-manager's defaults (max_restart 1, max_relocate 1, failback on).
    pub fn new(sid: &str, node: &str, state: RequestState) -> ServiceConf {
        let (kind, name) = sid.split_once(':').unwrap_or(("", sid));
        ServiceConf {
            sid: sid.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            node: node.to_string(),
            state,
            group: None,
            max_restart: 1,
            max_relocate: 1,
            failback: true,
            comment: None,
            lock: None,
            drbd: Vec::new(),
            span: Span::default(),
        }
    }
}

/// An HA group (groups.cfg, ha-manager before 5.0; migrated to node-affinity rules since).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub id: String,
    /// Members with their priority (higher runs first; no priority = 0).
    pub nodes: Vec<(String, i64)>,
    pub restricted: bool,
    pub nofailback: bool,
    pub comment: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    Positive,
    Negative,
}

/// A rule of rules.cfg (ha-manager 5.x).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Rule {
    NodeAffinity {
        id: String,
        resources: BTreeSet<String>,
        /// node -> priority
        nodes: BTreeMap<String, i64>,
        strict: bool,
        disable: bool,
        comment: Option<String>,
        span: Span,
    },
    ResourceAffinity {
        id: String,
        resources: BTreeSet<String>,
        affinity: Affinity,
        disable: bool,
        comment: Option<String>,
        span: Span,
    },
}

impl Rule {
    pub fn id(&self) -> &str {
        match self {
            Rule::NodeAffinity { id, .. } | Rule::ResourceAffinity { id, .. } => id,
        }
    }
    pub fn resources(&self) -> &BTreeSet<String> {
        match self {
            Rule::NodeAffinity { resources, .. } | Rule::ResourceAffinity { resources, .. } => resources,
        }
    }
    pub fn disabled(&self) -> bool {
        match self {
            Rule::NodeAffinity { disable, .. } | Rule::ResourceAffinity { disable, .. } => *disable,
        }
    }
    pub fn span(&self) -> Span {
        match self {
            Rule::NodeAffinity { span, .. } | Rule::ResourceAffinity { span, .. } => *span,
        }
    }
}

/// What a node's LRM does with its services when the node shuts down or reboots
/// (datacenter.cfg `ha: shutdown_policy=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownPolicy {
    #[default]
    Conditional,
    Freeze,
    Failover,
    Migrate,
}

impl ShutdownPolicy {
    pub fn parse(s: &str) -> Option<ShutdownPolicy> {
        Some(match s {
            "conditional" => ShutdownPolicy::Conditional,
            "freeze" => ShutdownPolicy::Freeze,
            "failover" => ShutdownPolicy::Failover,
            "migrate" => ShutdownPolicy::Migrate,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownPolicy::Conditional => "conditional",
            ShutdownPolicy::Freeze => "freeze",
            ShutdownPolicy::Failover => "failover",
            ShutdownPolicy::Migrate => "migrate",
        }
    }
}

/// The HA part of datacenter.cfg.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Datacenter {
    /// None when unset (ha-manager then uses `conditional`); Some(raw) keeps an unknown value so
    /// the LRM can say it falls back.
    pub shutdown_policy: Option<String>,
    /// `crs: ha=basic|static|dynamic`.
    pub crs_ha: Option<String>,
    /// `crs: ha-rebalance-on-start=1`.
    pub rebalance_on_start: bool,
}

impl Datacenter {
    pub fn policy(&self) -> ShutdownPolicy {
        self.shutdown_policy.as_deref().and_then(ShutdownPolicy::parse).unwrap_or_default()
    }
}

/// Everything the HA manager reads from the cluster file system.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HaConfig {
    pub services: BTreeMap<String, ServiceConf>,
    pub groups: BTreeMap<String, Group>,
    /// In file order (the rule's ordinal).
    pub rules: Vec<Rule>,
    pub datacenter: Datacenter,
}
