//! Finding the inputs of an import: files, directories and `az://`
//! prefixes, walked for the files a kind reads, and in Azure's blob layout
//! (`.../y=YYYY/m=MM/d=DD/h=HH/m=00/macAddress=.../PT1H.json`) only the
//! parts that can hold records of `--since`/`--until`.
//!
//! Azure appends each minute's tuples to the blob of the hour in which the
//! minute is logged, about a minute after it ends: the blob of hour h holds
//! the tuples of the last minute or so of hour h-1 and of hour h up to its
//! last minute (the docs' sample record, logged at 09:00:52, holds tuples
//! of 08:59:49 to 09:00:22). So the blob of hour h may hold records of
//! `[h - 1 h, h + 1 h)`, and a window is read from the blobs of the hours
//! it meets and of the hour after it; each tuple's own time then decides.
//! Back-to-back windows (`--since 08 --until 09`, then `--since 09 --until
//! 10`) each read the h=09 blob and together take every tuple once.
//!
//! With a window, the tree is walked one level at a time
//! ([`Location::list_level`]) and only the `y=`, `m=`, `d=` and `h=`
//! directories that may hold such blobs are entered (one listing call per
//! directory entered, none for the rest), instead of listing every hour
//! under the prefix. Without a window everything is listed at once.

use super::{ImportError, Kind, Summary, Window};
use crate::storage::{Entry, Level, Location, StorageError};

const HOUR_NS: i64 = 3_600_000_000_000;

/// One input file or blob.
#[derive(Clone, Debug)]
pub struct InputFile {
    pub location: Location,
    pub relative: String,
    /// The name for messages.
    pub display: String,
}

/// The files of `inputs` that `kind` reads, restricted to the blob hours
/// that may hold records of `window`; what is left out is counted in
/// `summary`.
pub fn input_files(
    kind: Kind,
    inputs: &[String],
    window: Window,
    summary: &mut Summary,
) -> Result<Vec<InputFile>, ImportError> {
    let mut files = Vec::new();
    for input in inputs {
        if kind == Kind::Pcap && input == super::capture::STDIN {
            files.push(super::capture::stdin_input());
            continue;
        }
        let location = Location::parse(input)?;
        let listed = list_window(&location, window, summary)?;
        let mut found = 0;
        for entry in listed {
            let display = if entry.relative.is_empty() {
                input.clone()
            } else {
                format!("{}/{}", input.trim_end_matches('/'), entry.relative)
            };
            let name = display.rsplit('/').next().unwrap_or_default();
            // A file named on the command line is read whatever its name.
            if !entry.relative.is_empty() && !kind.wants(name) {
                summary.skip_file("not a file of this kind (by name)");
                continue;
            }
            found += 1;
            if let Some((start, end)) = blob_hour(&display)
                && !may_hold(start, end, window)
            {
                summary.skip_file("blob hour outside --since/--until (and not the hour after)");
                continue;
            }
            files.push(InputFile {
                location: location.clone(),
                relative: entry.relative,
                display,
            });
        }
        if found == 0 {
            return Err(ImportError::NothingToRead {
                input: input.clone(),
                what: match kind {
                    Kind::Pcap => "pcap or pcapng (.pcap, .pcapng, .cap, also .gz)",
                    _ => "flow log (.json)",
                },
            });
        }
    }
    Ok(files)
}

/// The hour a blob covers in Azure's layout
/// (`.../y=2024/m=05/d=01/h=13/m=00/...`), as `[start, end)` in ns.
pub fn blob_hour(path: &str) -> Option<(i64, i64)> {
    let mut layout = Layout::default();
    for segment in path.split('/') {
        layout = layout.enter(segment);
    }
    layout.h?;
    layout.range()
}

/// Whether blobs of the layout span `[start, end)` may hold records of
/// `window`: records of `[start - 1 h, end)` (see the module header).
fn may_hold(start: i64, end: i64, window: Window) -> bool {
    window.overlaps(start - HOUR_NS, end)
}

/// The `y=`, `m=`, `d=`, `h=` values met on a path, in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Layout {
    y: Option<i32>,
    m: Option<u32>,
    d: Option<u32>,
    h: Option<u32>,
}

impl Layout {
    /// The layout after the path segment `name`: a `key=number` segment
    /// of the layout, in its place, sets its value; anything else leaves
    /// it as it was. The `m=` after `h=` is the minute, not the month.
    fn enter(self, name: &str) -> Self {
        let Some((key, value)) = name.split_once('=') else {
            return self;
        };
        let Ok(value) = value.parse::<u32>() else {
            return self;
        };
        let mut next = self;
        match key {
            "y" if self.y.is_none() => next.y = i32::try_from(value).ok(),
            "m" if self.y.is_some() && self.m.is_none() => next.m = Some(value),
            "d" if self.m.is_some() && self.d.is_none() => next.d = Some(value),
            "h" if self.d.is_some() && self.h.is_none() => next.h = Some(value),
            _ => {}
        }
        next
    }

    /// The UTC span `[start, end)` in ns the values so far cover, if a year is known.
    fn range(self) -> Option<(i64, i64)> {
        use chrono::{Months, NaiveDate, TimeDelta};
        let y = self.y?;
        let ns = |t: chrono::NaiveDateTime| t.and_utc().timestamp_nanos_opt();
        let (start, end) = match (self.m, self.d, self.h) {
            (None, _, _) => {
                let start = NaiveDate::from_ymd_opt(y, 1, 1)?;
                (start, start.checked_add_months(Months::new(12))?)
            }
            (Some(m), None, _) => {
                let start = NaiveDate::from_ymd_opt(y, m, 1)?;
                (start, start.checked_add_months(Months::new(1))?)
            }
            (Some(m), Some(d), None) => {
                let start = NaiveDate::from_ymd_opt(y, m, d)?;
                (start, start.succ_opt()?)
            }
            (Some(m), Some(d), Some(h)) => {
                let start = NaiveDate::from_ymd_opt(y, m, d)?.and_hms_opt(h, 0, 0)?;
                return Some((ns(start)?, ns(start + TimeDelta::hours(1))?));
            }
        };
        Some((
            ns(start.and_hms_opt(0, 0, 0)?)?,
            ns(end.and_hms_opt(0, 0, 0)?)?,
        ))
    }
}

/// A tree to walk: [`Location`], or a test's recording wrapper.
pub trait Tree {
    fn level(&self, dir: &str) -> Result<Level, StorageError>;
    fn all(&self, dir: &str) -> Result<Vec<Entry>, StorageError>;
}

impl Tree for Location {
    fn level(&self, dir: &str) -> Result<Level, StorageError> {
        self.list_level(dir)
    }

    fn all(&self, dir: &str) -> Result<Vec<Entry>, StorageError> {
        self.list_under(dir)
    }
}

/// The objects below `tree` that may hold records of `window` (all of
/// them when the window is open on both sides), sorted.
pub fn list_window(
    tree: &dyn Tree,
    window: Window,
    summary: &mut Summary,
) -> Result<Vec<Entry>, StorageError> {
    if window.since_ns.is_none() && window.until_ns.is_none() {
        return tree.all("");
    }
    let mut found = Vec::new();
    walk(
        tree,
        String::new(),
        Layout::default(),
        window,
        summary,
        &mut found,
    )?;
    found.sort();
    Ok(found)
}

fn walk(
    tree: &dyn Tree,
    dir: String,
    layout: Layout,
    window: Window,
    summary: &mut Summary,
    found: &mut Vec<Entry>,
) -> Result<(), StorageError> {
    if layout.h.is_some() {
        // An hour entered: its blobs (`m=00/macAddress=.../PT1H.json`) at once.
        found.extend(tree.all(&dir)?);
        return Ok(());
    }
    let level = tree.level(&dir)?;
    found.extend(level.files);
    for name in level.dirs {
        let inner = layout.enter(&name);
        if inner != layout
            && let Some((start, end)) = inner.range()
            && !may_hold(start, end, window)
        {
            summary.dirs_skipped += 1;
            continue;
        }
        let path = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        walk(tree, path, inner, window, summary, found)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::import::parse_time;

    #[test]
    fn blob_hours_follow_azures_layout() {
        let path = "insights-logs-flowlogflowevent/flowLogResourceID=/SUBSCRIPTIONS/X/y=2024/m=05/d=01/h=13/m=00/macAddress=00224871C205/PT1H.json";
        let (start, end) = blob_hour(path).unwrap();
        assert_eq!(start, parse_time("2024-05-01T13:00:00Z").unwrap());
        assert_eq!(end - start, HOUR_NS);
        assert_eq!(blob_hour("plain/file.json"), None);
        assert_eq!(blob_hour("y=2024/m=05/d=01/file.json"), None, "no hour");
        assert_eq!(
            blob_hour("y=2024/m=13/d=01/h=00/x.json"),
            None,
            "no such month"
        );
    }

    #[test]
    fn layout_levels_cover_years_months_days_and_hours() {
        let at = |t: &str| parse_time(t).unwrap();
        let mut layout = Layout::default().enter("resourceId=").enter("y=2024");
        assert_eq!(layout.range(), Some((at("2024-01-01"), at("2025-01-01"))));
        layout = layout.enter("m=02");
        assert_eq!(layout.range(), Some((at("2024-02-01"), at("2024-03-01"))));
        layout = layout.enter("d=29");
        assert_eq!(layout.range(), Some((at("2024-02-29"), at("2024-03-01"))));
        layout = layout.enter("h=23");
        assert_eq!(
            layout.range(),
            Some((at("2024-02-29T23"), at("2024-03-01")))
        );
        // The minute after the hour changes nothing.
        assert_eq!(layout.enter("m=00"), layout);
    }

    /// A local tree whose listing calls are recorded.
    struct Recorded {
        location: Location,
        calls: RefCell<Vec<String>>,
    }

    impl Tree for Recorded {
        fn level(&self, dir: &str) -> Result<Level, StorageError> {
            self.calls.borrow_mut().push(format!("level {dir}"));
            self.location.list_level(dir)
        }

        fn all(&self, dir: &str) -> Result<Vec<Entry>, StorageError> {
            self.calls.borrow_mut().push(format!("all {dir}"));
            self.location.list_under(dir)
        }
    }

    #[test]
    fn a_window_lists_only_its_hours_and_the_one_after() {
        let dir = tempfile::tempdir().unwrap();
        let root = "flowLogResourceID=/SUBSCRIPTIONS/S/FLOWLOGS/F";
        // Two days of hours, and a file outside the layout.
        for (d, h) in (1..=2).flat_map(|d| (0..24).map(move |h| (d, h))) {
            let blob = dir.path().join(format!(
                "{root}/y=2024/m=05/d={d:02}/h={h:02}/m=00/macAddress=A/PT1H.json"
            ));
            std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
            std::fs::write(blob, "{}").unwrap();
        }
        std::fs::write(dir.path().join("notes.json"), "{}").unwrap();
        let tree = Recorded {
            location: Location::Local(dir.path().to_owned()),
            calls: RefCell::default(),
        };
        let window = Window {
            since_ns: Some(parse_time("2024-05-01T23").unwrap()),
            until_ns: Some(parse_time("2024-05-02T00").unwrap()),
        };
        let mut summary = Summary::default();
        let found = list_window(&tree, window, &mut summary).unwrap();
        let names: Vec<&str> = found.iter().map(|e| e.relative.as_str()).collect();
        assert_eq!(
            names,
            [
                &format!("{root}/y=2024/m=05/d=01/h=23/m=00/macAddress=A/PT1H.json"),
                &format!("{root}/y=2024/m=05/d=02/h=00/m=00/macAddress=A/PT1H.json"),
                "notes.json",
            ]
        );
        let calls = tree.calls.take();
        // Each level above the hours once, each day once, the two hours.
        let all: Vec<&String> = calls.iter().filter(|c| c.starts_with("all ")).collect();
        assert_eq!(
            all,
            [
                &format!("all {root}/y=2024/m=05/d=01/h=23"),
                &format!("all {root}/y=2024/m=05/d=02/h=00")
            ]
        );
        // One level call each for the root, the five directories above
        // the layout, the year, the month and the two days.
        assert_eq!(calls.len(), 10 + 2, "{calls:#?}");
        // 23 hours of day 1 and 23 of day 2 not entered.
        assert_eq!(summary.dirs_skipped, 46);

        // Open at the end: from 2024-05-02T22 on, the last two hours.
        let since = Window {
            since_ns: Some(parse_time("2024-05-02T22").unwrap()),
            until_ns: None,
        };
        let found = list_window(&tree, since, &mut Summary::default()).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
