//! The environment variable that names the descriptors an exec'd child inherits:
//! `SHM_IPC_ENDPOINTS=ppid=<pid>;<name>=<fd>:<ticket>;...`, e.g.
//! `ppid=4242;jobs=3:spsc.receiver.0;results=4:spsc.sender.0`.
//!
//! `ppid` is the spawning process: a grandchild that inherits the variable (but not the
//! descriptors) finds a parent of another pid and refuses it.

use std::os::fd::RawFd;

use shm_channel::transfer::Ticket;

/// The variable's name.
pub const ENDPOINTS_VAR: &str = "SHM_IPC_ENDPOINTS";

/// One passed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) fd: RawFd,
    pub(crate) ticket: Ticket,
}

/// Whether `name` may name an endpoint: 1 to 64 of `[A-Za-z0-9_-]`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The variable's value for endpoints passed by process `parent`.
pub(crate) fn encode(parent: i32, entries: &[Entry]) -> String {
    let mut value = format!("ppid={parent}");
    for entry in entries {
        value.push_str(&format!(";{}={}:{}", entry.name, entry.fd, entry.ticket));
    }
    value
}

/// Parses the variable's value: the spawning pid and the entries. Descriptors 0..=2 (the
/// standard streams) and duplicate names are refused.
pub(crate) fn parse(value: &str) -> Result<(i32, Vec<Entry>), &'static str> {
    let bad = |reason: &'static str| reason;
    let mut parts = value.split(';');
    let parent = parts
        .next()
        .and_then(|first| first.strip_prefix("ppid="))
        .and_then(|pid| pid.parse::<i32>().ok())
        .filter(|pid| *pid > 0)
        .ok_or(bad("it does not start with ppid=<pid>"))?;
    let mut entries: Vec<Entry> = Vec::new();
    for part in parts {
        let (name, rest) = part.split_once('=').ok_or(bad("an entry has no '='"))?;
        let (fd, ticket) = rest.split_once(':').ok_or(bad("an entry has no ':'"))?;
        if !valid_name(name) {
            return Err(bad("an endpoint name is not 1 to 64 of [A-Za-z0-9_-]"));
        }
        let fd = fd
            .parse::<RawFd>()
            .ok()
            .filter(|fd| *fd > 2)
            .ok_or(bad("a descriptor is not a number above 2"))?;
        let ticket = ticket
            .parse()
            .map_err(|_| bad("an entry names an invalid endpoint"))?;
        if entries.iter().any(|e| e.name == name || e.fd == fd) {
            return Err(bad("a name or descriptor appears twice"));
        }
        entries.push(Entry {
            name: name.to_owned(),
            fd,
            ticket,
        });
    }
    Ok((parent, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_entries_parse_back() {
        let entries = vec![
            Entry {
                name: "jobs".into(),
                fd: 7,
                ticket: "spsc.receiver.0".parse().unwrap(),
            },
            Entry {
                name: "out-2".into(),
                fd: 9,
                ticket: "mpsc.sender.3".parse().unwrap(),
            },
        ];
        let value = encode(42, &entries);
        assert_eq!(
            value,
            "ppid=42;jobs=7:spsc.receiver.0;out-2=9:mpsc.sender.3"
        );
        assert_eq!(parse(&value).unwrap(), (42, entries));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for value in [
            "",
            "ppid=",
            "ppid=-1",
            "jobs=3:spsc.receiver.0",
            "ppid=1;jobs",
            "ppid=1;jobs=3",
            "ppid=1;jobs=x:spsc.receiver.0",
            "ppid=1;jobs=1:spsc.receiver.0",
            "ppid=1;jobs=99999999999:spsc.receiver.0",
            "ppid=1;jobs=3:spsc.receiver",
            "ppid=1;jobs=3:tcp.receiver.0",
            "ppid=1;jobs=3:spsc.receiver.0;jobs=4:spsc.sender.0",
            "ppid=1;a b=3:spsc.receiver.0",
            "ppid=1;=3:spsc.receiver.0",
        ] {
            assert!(parse(value).is_err(), "{value:?} parsed");
        }
    }
}
