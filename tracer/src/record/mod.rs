//! Recordings: the decoded event stream in a file, replayed through the same pipeline without
//! root or a kernel.
//!
//! Format (version 1), UTF-8 text, one JSON object per line:
//! 1. a header: `{"format":"tcp-flow-tracer-recording","version":1,"kernel":"<release>",
//!    "started_ns":<wall clock ns>,"hooks":{"<signal>":"<hook>",...}}`;
//! 2. events, each exactly as `tracer watch --json` prints it (events/model.rs);
//! 3. `{"record":"lost","ts_ns":..,"count":N}` whenever the kernel could not queue N events;
//! 4. a trailer: `{"record":"end","ts_ns":..,"events":N,"lost":M}`. A file without it was cut
//!    short (the recorder was killed, or the disk filled).
//!
//! Later versions may add header fields and line kinds; a reader skips unknown "record" lines.
//!
//! `Recorder` writes one (a pipeline consumer); `player` plays one through the pipeline.

pub mod player;

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::{
    events::{ndjson::Lines, Event},
    pipeline::{Consumer, State},
    timeline::{ConnKey, ConnSummary},
};

pub const FORMAT: &str = "tcp-flow-tracer-recording";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub kernel: String,
    pub started_ns: u64,
    /// Which hook served each signal while recording.
    #[serde(default)]
    pub hooks: BTreeMap<String, String>,
}

/// A non-event line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Marker {
    Lost { ts_ns: u64, count: u64 },
    End { ts_ns: u64, events: u64, lost: u64 },
}

pub struct Recorder {
    out: BufWriter<File>,
    /// One event's line, reused from event to event.
    line: Lines,
    path: PathBuf,
    events: u64,
    lost: u64,
}

impl Recorder {
    pub fn create(path: &Path, header: &Header) -> Result<Recorder> {
        let file = File::create(path)
            .with_context(|| format!("failed to create the recording {}", path.display()))?;
        let mut rec = Recorder {
            out: BufWriter::new(file),
            line: Lines::default(),
            path: path.to_path_buf(),
            events: 0,
            lost: 0,
        };
        rec.line(header)?;
        Ok(rec)
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .with_context(|| format!("failed to write the recording {}", self.path.display()))
    }

    pub fn event(&mut self, e: &Event) -> Result<()> {
        self.events += 1;
        self.line.clear();
        self.line.event(e);
        self.out
            .write_all(self.line.as_bytes())
            .with_context(|| format!("failed to write the recording {}", self.path.display()))
    }

    pub fn lost(&mut self, ts_ns: u64, count: u64) -> Result<()> {
        self.lost += count;
        self.line(&Marker::Lost { ts_ns, count })
    }

    /// Writes the trailer and flushes: a recording without it reads as cut short.
    pub fn finish(&mut self, ts_ns: u64) -> Result<()> {
        let end = Marker::End { ts_ns, events: self.events, lost: self.lost };
        self.line(&end)?;
        self.out
            .flush()
            .with_context(|| format!("failed to write the recording {}", self.path.display()))
    }
}

impl Consumer for Recorder {
    fn event(&mut self, e: &Event, _key: ConnKey, _state: &State<'_>) -> Result<()> {
        Recorder::event(self, e)
    }

    fn lost(&mut self, ts_ns: u64, new: u64, _total: u64) -> Result<()> {
        Recorder::lost(self, ts_ns, new)
    }

    fn finish(&mut self, _state: &State<'_>, now_ns: u64, _summary: &[ConnSummary]) -> Result<()> {
        Recorder::finish(self, now_ns)
    }
}

/// One item read back from a recording.
#[derive(Debug)]
pub enum Item {
    Event(Box<Event>),
    Lost { ts_ns: u64, count: u64 },
    End { events: u64, lost: u64 },
}

/// Where and why a recording could not be read further.
#[derive(Debug)]
pub struct Broken {
    pub path: PathBuf,
    pub line: usize,
    pub byte: u64,
    pub why: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: line {} (byte {}): {}; everything before it was replayed",
            self.path.display(),
            self.line,
            self.byte,
            self.why
        )
    }
}

impl std::error::Error for Broken {}

pub struct Reader {
    input: Box<dyn BufRead>,
    path: PathBuf,
    pub header: Header,
    line: usize,
    byte: u64,
    ended: bool,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path)
            .with_context(|| format!("failed to open the recording {}", path.display()))?;
        Self::new(Box::new(BufReader::new(file)), path)
    }

    /// Reads and checks the header.
    pub fn new(mut input: Box<dyn BufRead>, path: &Path) -> Result<Reader> {
        let mut first = String::new();
        input
            .read_line(&mut first)
            .with_context(|| format!("failed to read the recording {}", path.display()))?;
        let broken = |why: String| Broken { path: path.to_path_buf(), line: 1, byte: 0, why };
        if first.trim().is_empty() {
            return Err(broken("the file is empty: not a recording".into()).into());
        }
        let header: Header = serde_json::from_str(first.trim_end())
            .map_err(|e| broken(format!("not a tracer recording header ({e})")))?;
        if header.format != FORMAT {
            return Err(broken(format!("format {:?} is not {FORMAT:?}", header.format)).into());
        }
        if header.version != VERSION {
            return Err(broken(format!(
                "recording version {} is not supported (this tracer reads version {VERSION})",
                header.version
            ))
            .into());
        }
        Ok(Reader {
            input,
            path: path.to_path_buf(),
            header,
            line: 1,
            byte: first.len() as u64,
            ended: false,
        })
    }

    /// The next item; Ok(None) at the end of the file. An error says where the file broke.
    pub fn next_item(&mut self) -> Result<Option<Item>, Broken> {
        loop {
            let mut text = String::new();
            let start = self.byte;
            let n =
                self.input.read_line(&mut text).map_err(|e| self.broken(start, e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.byte += n as u64;
            if self.ended {
                return Err(self.broken(start, "data after the end-of-recording trailer".into()));
            }
            let trimmed = text.trim_end();
            if trimmed.is_empty() {
                continue;
            }
            let cut = !text.ends_with('\n');
            let value: serde_json::Value = serde_json::from_str(trimmed).map_err(|e| {
                let why = if cut {
                    format!("the last line is cut short ({e}): the recording was truncated")
                } else {
                    format!("not valid JSON ({e})")
                };
                self.broken(start, why)
            })?;
            if value.get("kind").is_some() {
                let event: Event = serde_json::from_value(value)
                    .map_err(|e| self.broken(start, format!("not a valid event ({e})")))?;
                return Ok(Some(Item::Event(Box::new(event))));
            }
            match value.get("record").and_then(|r| r.as_str()) {
                Some("lost" | "end") => {
                    let marker: Marker = serde_json::from_value(value)
                        .map_err(|e| self.broken(start, format!("bad marker ({e})")))?;
                    return Ok(Some(match marker {
                        Marker::Lost { ts_ns, count } => Item::Lost { ts_ns, count },
                        Marker::End { events, lost, .. } => {
                            self.ended = true;
                            Item::End { events, lost }
                        }
                    }));
                }
                // A later version's marker: nothing to replay.
                Some(_) => continue,
                None => {
                    return Err(
                        self.broken(start, "a line that is neither an event nor a marker".into())
                    )
                }
            }
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    fn broken(&self, byte: u64, why: String) -> Broken {
        Broken { path: self.path.clone(), line: self.line, byte, why }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::events::{model::Side, Body};

    fn event(ts_ns: u64) -> Event {
        Event {
            ts_ns,
            body: Body::ZeroWindowEnd { side: Side::Local, window: 4096, duration_ns: Some(5) },
            saddr: "10.0.0.1".parse().unwrap(),
            sport: 5001,
            daddr: "10.0.0.2".parse().unwrap(),
            dport: 40000,
            pid: Some(7),
            sk: 0xffff_8881_0000_1000,
            hook: "fentry".into(),
        }
    }

    fn header() -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            kernel: "6.1.0-test".into(),
            started_ns: 1,
            hooks: BTreeMap::new(),
        }
    }

    fn write(events: &[Event], lost: Option<u64>, trailer: bool) -> String {
        let dir = std::env::temp_dir().join(format!(
            "tracer-rec-{}-{}",
            std::process::id(),
            events.len()
        ));
        let mut rec = Recorder::create(&dir, &header()).unwrap();
        for e in events {
            rec.event(e).unwrap();
        }
        if let Some(n) = lost {
            rec.lost(9, n).unwrap();
        }
        if trailer {
            rec.finish(10).unwrap();
        } else {
            rec.out.flush().unwrap();
        }
        let text = std::fs::read_to_string(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        text
    }

    fn read_all(text: &str) -> (Vec<Item>, Option<Broken>) {
        let mut r = Reader::new(Box::new(Cursor::new(text.to_string())), Path::new("rec")).unwrap();
        let mut items = Vec::new();
        loop {
            match r.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return (items, None),
                Err(b) => return (items, Some(b)),
            }
        }
    }

    #[test]
    fn round_trip_keeps_every_event_and_marker() {
        let text = write(&[event(1), event(2)], Some(3), true);
        let (items, broken) = read_all(&text);
        assert!(broken.is_none());
        assert_eq!(items.len(), 4);
        assert!(matches!(&items[0], Item::Event(e) if **e == event(1)));
        assert!(matches!(items[2], Item::Lost { count: 3, .. }));
        assert!(matches!(items[3], Item::End { events: 2, lost: 3 }));
    }

    #[test]
    fn a_corrupt_line_says_where_and_keeps_what_came_before() {
        let text = write(&[event(1), event(2), event(3)], None, true);
        let mut lines: Vec<&str> = text.lines().collect();
        lines[2] = "{\"ts_ns\": oops}";
        let text = lines.join("\n") + "\n";
        let (items, broken) = read_all(&text);
        assert_eq!(items.len(), 1, "the event before the break is kept");
        let broken = broken.expect("an error");
        assert_eq!(broken.line, 3);
        assert!(broken.to_string().contains("rec: line 3 (byte"), "{broken}");
        assert!(broken.why.contains("not valid JSON"), "{broken}");
    }

    #[test]
    fn a_truncated_file_is_reported_as_such() {
        let text = write(&[event(1), event(2)], None, false);
        let cut = &text[..text.len() - 20];
        let (items, broken) = read_all(cut);
        assert_eq!(items.len(), 1);
        assert!(broken.expect("an error").why.contains("truncated"));
    }

    #[test]
    fn an_unfinished_recording_reads_cleanly_without_its_trailer() {
        let text = write(&[event(1)], None, false);
        let mut r = Reader::new(Box::new(Cursor::new(text)), Path::new("rec")).unwrap();
        assert!(matches!(r.next_item(), Ok(Some(Item::Event(_)))));
        assert!(matches!(r.next_item(), Ok(None)));
        assert!(!r.ended());
    }

    #[test]
    fn wrong_headers_are_refused_with_the_reason() {
        let err = |text: &str| {
            Reader::new(Box::new(Cursor::new(text.to_string())), Path::new("f.rec"))
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err("").contains("empty"));
        assert!(err("hello\n").contains("not a tracer recording header"));
        let v2 = serde_json::to_string(&Header { version: 2, ..header() }).unwrap();
        assert!(err(&v2).contains("version 2 is not supported"));
        let other = serde_json::to_string(&Header { format: "pcap".into(), ..header() }).unwrap();
        assert!(err(&other).contains("is not \"tcp-flow-tracer-recording\""));
    }

    #[test]
    fn data_after_the_trailer_is_an_error() {
        let text =
            write(&[event(1)], None, true) + &serde_json::to_string(&event(2)).unwrap() + "\n";
        let (_, broken) = read_all(&text);
        assert!(broken.expect("an error").why.contains("after the end-of-recording trailer"));
    }
}
