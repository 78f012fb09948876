//! The one checked way to run setup commands (`ip`, `nft`, `sysctl`, ...):
//! a failure carries the command line and its stderr.

use std::{
    ffi::OsStr,
    io::Write as _,
    process::{Command, Output, Stdio},
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CmdError {
    #[error(
        "cannot run `{command}`: {source} (is it installed? `cargo xtask` installs what the lab needs)"
    )]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

fn render(program: &str, args: &[&OsStr]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `program args...`, returning stdout, or an error naming the command.
pub(crate) fn run<S: AsRef<OsStr>>(
    program: &str,
    args: impl IntoIterator<Item = S>,
) -> Result<String, CmdError> {
    let args: Vec<S> = args.into_iter().collect();
    let refs: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    let output = Command::new(program)
        .args(&refs)
        .output()
        .map_err(|source| CmdError::Spawn {
            command: render(program, &refs),
            source,
        })?;
    check(program, &refs, output)
}

fn check(program: &str, args: &[&OsStr], output: Output) -> Result<String, CmdError> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(CmdError::Failed {
            command: render(program, args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// `ip ARGS...`.
pub(crate) fn ip<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Result<String, CmdError> {
    run("ip", args)
}

/// Loads the nftables `script` in the network namespace `netns` (`ip
/// netns exec NETNS nft -f -`, the script on standard input). A refusal
/// carries nft's own message, which names the line and column it refused.
pub(crate) fn nft_script(netns: &str, script: &str) -> Result<(), CmdError> {
    let args: [&OsStr; 6] = ["netns", "exec", netns, "nft", "-f", "-"].map(OsStr::new);
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CmdError::Spawn {
            command: render("ip", &args),
            source,
        })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Written from a thread of its own: nft may answer before it has read
    // everything, and neither side must wait on a full pipe.
    let output = std::thread::scope(|scope| {
        scope.spawn(move || {
            // A write error means nft stopped reading; its status and
            // stderr below say why.
            let _ = stdin.write_all(script.as_bytes());
        });
        child.wait_with_output()
    })
    .map_err(|source| CmdError::Spawn {
        command: render("ip", &args),
        source,
    })?;
    check("ip", &args, output).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_its_stderr() {
        let err = run("sh", ["-c", "echo oops >&2; exit 3"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`sh -c echo oops >&2; exit 3` failed"),
            "{err}"
        );
        assert!(err.ends_with("oops"), "{err}");
        let err = run("observer-no-such-tool", ["x"]).unwrap_err().to_string();
        assert!(
            err.contains("cannot run `observer-no-such-tool x`"),
            "{err}"
        );
        assert_eq!(run("echo", ["hi"]).unwrap(), "hi\n");
    }

    #[test]
    fn an_nft_script_in_a_missing_namespace_names_the_command() {
        let err = nft_script("observer-no-such-netns", "table ip t {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`ip netns exec observer-no-such-netns nft -f -` failed")
                || err.starts_with("cannot run `ip netns exec observer-no-such-netns nft -f -`"),
            "{err}"
        );
    }
}
