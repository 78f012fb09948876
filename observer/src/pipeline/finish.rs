//! The end of a run: detach, read what the rings still hold, drain both
//! flow maps, end every flow, write the last files and the summary. A run
//! whose writes failed still ends here: the last flush tries the pending
//! rows again, what stays unwritten is counted in the summary, and a
//! summary that cannot be written either is handed back for stderr.

use std::{ops::ControlFlow, path::Path};

use super::{
    Pipeline, RunError,
    kernel::{Kernel, Ring as _, SourcesOf},
    summary::{RunSummary, Unwritten, counter_values, error_chain, lost_packets},
};
use crate::files::WriteError;

impl<K: Kernel> Pipeline<K> {
    /// Detaches, drains both flow maps and the rings, ends every flow and
    /// writes the last file and the summary (`out/run-ID.json`).
    pub(super) fn finish(
        mut self,
        mut sources: SourcesOf<K>,
        out: &Path,
        stop_reason: &str,
    ) -> Result<RunSummary, RunError> {
        self.kernel.detach();
        if let Some(dns_events) = &mut sources.dns_events {
            while !self.read_dns_events(|sink| dns_events.read_now(sink)) {
                self.flush_if_full();
                if self.dns_files.is_full() {
                    // The write failed: count what is left instead of
                    // holding it.
                    let unread = &mut self.summary.unwritten.dns_messages;
                    dns_events.read_now(&mut |_| {
                        *unread += 1;
                        ControlFlow::Continue(())
                    });
                    break;
                }
            }
        }
        // Two swaps: the first drains the map in use until now, the second the
        // one installed by the first (written to until the detach).
        self.drain()?;
        self.drain()?;
        while !self.read_flow_events(|sink| sources.flow_events.read_now(sink)) {}
        self.counters = self.kernel.counters()?;
        self.table.finish(&mut self.ended);
        self.emit();
        self.flush();
        self.publish();

        let mut summary = self.summary.clone();
        summary.stopped = self.now_rfc3339();
        summary.stop_reason = stop_reason.to_owned();
        summary.files = self.files.files().to_vec();
        summary.dns_files = self.dns_files.files().to_vec();
        summary.dns_evicted = self.dns.evicted();
        summary.counters = counter_values(&self.counters);
        summary.lost_packets = lost_packets(&self.counters);
        let pending = self.files.pending_mut();
        summary.unwritten = Unwritten {
            records: pending.len() as u64,
            packets: pending.iter().map(|r| r.packets).sum(),
            bytes: pending.iter().map(|r| r.bytes).sum(),
            dns_answers: self.dns_files.pending_len() as u64,
            dns_messages: summary.unwritten.dns_messages,
        };
        let path = out.join(format!("run-{}.json", summary.run_id));
        let json = serde_json::to_string_pretty(&summary).expect("summary serializes");
        let tmp = out.join(format!(".run-{}.json.tmp", summary.run_id));
        let written = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            let error = if source.kind() == std::io::ErrorKind::StorageFull {
                WriteError::DiskFull { path }
            } else {
                WriteError::Io { path, source }
            };
            summary.summary_error = Some(error_chain(&error));
        }
        Ok(summary)
    }
}
