//! The environment variable that names the descriptors an exec'd child inherits:
//! `SHM_IPC_ENDPOINTS=ppid=<pid>;<name>=<fd>[,<fd>,<fd>]:<ticket>;...`, e.g.
//! `ppid=4242;jobs=3:spsc.receiver.0;results=4,5,6:spsc.sender.0` — an endpoint's memfd,
//! then its channel's two doorbells if it has them (an end of a request/response pair,
//! `rpc.client.0`: that for each of its two channels).
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
    /// The memfd, then the doorbells (if any).
    pub(crate) fds: Vec<RawFd>,
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
        let fds: Vec<String> = entry.fds.iter().map(RawFd::to_string).collect();
        value.push_str(&format!(
            ";{}={}:{}",
            entry.name,
            fds.join(","),
            entry.ticket
        ));
    }
    value
}

/// Parses the variable's value: the spawning pid and the entries. Descriptors 0..=2 (the
/// standard streams), entries of a number of descriptors their ticket does not travel
/// with (1 or 3 for an endpoint, 2 or 6 for a pair's end), and duplicate names or
/// descriptors are refused.
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
        let (fds, ticket) = rest.split_once(':').ok_or(bad("an entry has no ':'"))?;
        if !valid_name(name) {
            return Err(bad("an endpoint name is not 1 to 64 of [A-Za-z0-9_-]"));
        }
        let fds = fds
            .split(',')
            .map(|fd| fd.parse::<RawFd>().ok().filter(|fd| *fd > 2))
            .collect::<Option<Vec<RawFd>>>()
            .ok_or(bad("a descriptor is not a number above 2"))?;
        let ticket: Ticket = ticket
            .parse()
            .map_err(|_| bad("an entry names an invalid endpoint"))?;
        if ticket.fd_kinds(fds.len()).is_none() {
            return Err(bad(
                "an entry names a number of descriptors its endpoint does not have",
            ));
        }
        let reused = |e: &Entry| e.fds.iter().any(|fd| fds.contains(fd));
        if fds.iter().enumerate().any(|(i, fd)| fds[..i].contains(fd))
            || entries.iter().any(|e| e.name == name || reused(e))
        {
            return Err(bad("a name or descriptor appears twice"));
        }
        entries.push(Entry {
            name: name.to_owned(),
            fds,
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
                fds: vec![7],
                ticket: "spsc.receiver.0".parse().unwrap(),
            },
            Entry {
                name: "out-2".into(),
                fds: vec![9, 10, 11],
                ticket: "mpsc.sender.3".parse().unwrap(),
            },
            Entry {
                name: "svc".into(),
                fds: vec![12, 13],
                ticket: "rpc.client.0".parse().unwrap(),
            },
        ];
        let value = encode(42, &entries);
        assert_eq!(
            value,
            "ppid=42;jobs=7:spsc.receiver.0;out-2=9,10,11:mpsc.sender.3;svc=12,13:rpc.client.0"
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
            "ppid=1;jobs=3,4:spsc.receiver.0",
            "ppid=1;jobs=3,4,5,6:spsc.receiver.0",
            "ppid=1;jobs=3,4,4:spsc.receiver.0",
            "ppid=1;jobs=3,4,5:spsc.receiver.0;out=5:spsc.sender.0",
            "ppid=1;jobs=3,,5:spsc.receiver.0",
            "ppid=1;=3:spsc.receiver.0",
        ] {
            assert!(parse(value).is_err(), "{value:?} parsed");
        }
    }
}
