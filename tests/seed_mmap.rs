//! The reference program's output: four lines, the child's last showing `string 2`.

use std::process::Command;

mod common;

#[test]
fn seed_mmap_shows_the_childs_view_change() {
    let output = Command::new(common::example_binary("seed_mmap"))
        .arg("--fast")
        .output()
        .expect("run the seed_mmap example (cargo test builds it)");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for line in &lines {
        assert!(line.starts_with("PID "), "{line}");
        assert!(line.contains(":\tanonymous string "), "{line}");
    }
    let pid_of = |line: &str| line.split(':').next().unwrap().to_owned();
    let parent = pid_of(lines[0]);
    assert!(lines[0].ends_with("anonymous string 1, zero-backed string 1"));
    // Order: parent before fork, child, parent after writing, child after its sleep.
    assert_ne!(pid_of(lines[1]), parent);
    assert!(lines[1].ends_with("anonymous string 1, zero-backed string 1"));
    assert_eq!(pid_of(lines[2]), parent);
    assert!(lines[2].ends_with("anonymous string 2, zero-backed string 2"));
    assert_eq!(pid_of(lines[3]), pid_of(lines[1]));
    assert!(lines[3].ends_with("anonymous string 2, zero-backed string 2"));
}
