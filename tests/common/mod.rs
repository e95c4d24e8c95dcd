//! What the facade's integration tests share.

/// The binary of example `name`, built by `cargo test` next to the test executables.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let test_exe = std::env::current_exe().expect("current_exe");
    let deps = test_exe.parent().expect("deps dir");
    deps.parent()
        .expect("profile dir")
        .join("examples")
        .join(name)
}
