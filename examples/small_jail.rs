//! The sandbox crate's `jail` in a small binary: the same plan, namespaces, mounts, Landlock,
//! cgroups, seccomp and recording supervisor as `modelvet jail`, without the 200 MB of tract,
//! wasmtime and the CLI around it. `bench/jail_bench.sh` times it beside `modelvet jail` and bwrap
//! to split modelvet's spawn time into what the big binary's start and exit cost and what the
//! sandbox's own work costs. Prints the run's resource figures as JSON.
//! Run: `cargo run --release -p sandbox --example small_jail -- /bin/true`

/// The allocator `modelvet` itself uses on musl, so that both sides compare alike.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: sandbox::alloc::Pool = sandbox::alloc::Pool;

fn main() {
    sandbox::warm_up_with_child();
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: small_jail PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let mut config = sandbox::Config::new(program);
    config.args = args.collect();
    // As `modelvet jail` does: this thread only waits, so it supervises.
    config.supervisor_thread = false;
    let host = sandbox::HostSupport::detect();
    let running = match sandbox::spawn_with(config, &host) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("small_jail: {e}");
            std::process::exit(3);
        }
    };
    let outcome = running.wait();
    match serde_json::to_string(&outcome.resources) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("small_jail: {e}"),
    }
}
