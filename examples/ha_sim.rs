fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    match twonode::ha::sim::simulate(std::path::Path::new(&dir)) {
        Ok((log, err)) => {
            for l in log {
                println!("{l}");
            }
            if let Some(e) = err {
                eprintln!("error: {e}");
            }
        }
        Err(e) => eprintln!("{e}"),
    }
}
