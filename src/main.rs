fn main() -> std::process::ExitCode {
    outagewatch::cli::main()
}
