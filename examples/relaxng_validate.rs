//! Validate files with twonode's RELAX NG validator and print timings (used by bench/relaxng-bench).
//! Usage: relaxng_validate [--schema FILE.rng] [--repeat N] FILE...  |  relaxng_validate --generate NODES
use std::time::Instant;
use twonode::clusterconf::relaxng::{Schema, CLUSTER_RNG};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut repeat = 1usize;
    let mut rng = CLUSTER_RNG.to_string();
    while let Some(a) = args.first().cloned() {
        match a.as_str() {
            "--repeat" => {
                repeat = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(1);
                args.drain(..2);
            }
            "--generate" => {
                let n = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(64);
                print!("{}", twonode::clusterconf::relaxng::sample_cluster_conf(n));
                return;
            }
            "--schema" => {
                rng = std::fs::read_to_string(&args[1]).expect("read schema");
                args.drain(..2);
            }
            _ => break,
        }
    }
    let t0 = Instant::now();
    let schema = Schema::parse(&rng).expect("schema compiles");
    let compile = t0.elapsed();
    println!("compile_ms\t{:.3}", compile.as_secs_f64() * 1e3);
    let mut bad = 0;
    for f in &args {
        let text = std::fs::read_to_string(f).expect("read file");
        let t = Instant::now();
        let mut d = Vec::new();
        for _ in 0..repeat {
            d = schema.validate(&text);
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / repeat as f64;
        println!("validate_ms\t{per:.3}\t{f}\t{}", if d.is_empty() { "VALID" } else { "INVALID" });
        for x in &d {
            println!("  {f}:{x}");
        }
        if !d.is_empty() {
            bad += 1;
        }
    }
    std::process::exit(if bad > 0 { 3 } else { 0 });
}
