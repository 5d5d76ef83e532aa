fn main() {
    std::process::exit(simian_cli::main());
}
