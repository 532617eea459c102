//! The recording player: feeds a recording's events and loss markers to the pipeline, all at
//! once (`replay`, `report`) or one item at a time at a pace the caller sets (`top --from`),
//! and checks the trailer. `replay`, `report` and `top` all play recordings through it.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::Result;

use super::{Broken, Header, Item, Reader};
use crate::pipeline::Pipeline;

/// Something wrong with a recording that did not stop it being played.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The trailer's counts differ from what was read.
    Miscounted { events: u64, lost: u64, read_events: u64, read_lost: u64 },
    /// No trailer: the recorder did not stop cleanly.
    CutShort { path: PathBuf },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Miscounted { events, lost, read_events, read_lost } => write!(
                f,
                "the trailer counts {events} events and {lost} lost, but {read_events} events \
                 and {read_lost} lost were read"
            ),
            Note::CutShort { path } => write!(
                f,
                "{} has no end-of-recording trailer: the recorder stopped abruptly, so the last \
                 moments may be missing",
                path.display()
            ),
        }
    }
}

pub struct Player {
    reader: Reader,
    path: PathBuf,
    header: Header,
    /// The next item, read ahead so its time can be known before it is played.
    pending: Option<Item>,
    /// The latest time recorded so far: where the run ends.
    last_ns: u64,
    events: u64,
    lost: u64,
    finished: bool,
    broken: Option<Broken>,
    notes: Vec<Note>,
}

impl Player {
    /// Opens `path` and reads its header (errors here mean nothing can be played).
    pub fn open(path: &Path) -> Result<Player> {
        let reader = Reader::open(path)?;
        let header = reader.header.clone();
        Ok(Player {
            reader,
            path: path.to_path_buf(),
            last_ns: header.started_ns,
            header,
            pending: None,
            events: 0,
            lost: 0,
            finished: false,
            broken: None,
            notes: Vec::new(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The latest time recorded among the items played: the end of the run, so that the
    /// output depends on the file alone.
    pub fn last_ns(&self) -> u64 {
        self.last_ns
    }

    /// Events and lost events played.
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The recording ended with its trailer.
    pub fn ended_cleanly(&self) -> bool {
        self.reader.ended()
    }

    /// Where the file broke, if it did (everything before it was played).
    pub fn broken(&self) -> Option<&Broken> {
        self.broken.as_ref()
    }

    pub fn take_broken(&mut self) -> Option<Broken> {
        self.broken.take()
    }

    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The time of the next item to play; None when the recording is over.
    pub fn next_ts(&mut self) -> Option<u64> {
        self.fill();
        self.pending.as_ref().map(|item| match item {
            Item::Event(e) => e.ts_ns,
            Item::Lost { ts_ns, .. } => *ts_ns,
            Item::End { .. } => self.last_ns,
        })
    }

    /// Plays the next item; returns its time, or None when the recording is over.
    pub fn step(&mut self, pipeline: &mut Pipeline) -> Result<Option<u64>> {
        let Some(ts) = self.next_ts() else { return Ok(None) };
        self.last_ns = self.last_ns.max(ts);
        match self.pending.take() {
            Some(Item::Event(e)) => {
                self.events += 1;
                pipeline.event(&e)?;
            }
            Some(Item::Lost { count, .. }) => {
                self.lost += count;
                pipeline.lost(ts, count)?;
            }
            Some(Item::End { events, lost }) if events != self.events || lost != self.lost => {
                self.notes.push(Note::Miscounted {
                    events,
                    lost,
                    read_events: self.events,
                    read_lost: self.lost,
                });
            }
            Some(Item::End { .. }) | None => {}
        }
        Ok(Some(ts))
    }

    /// Plays everything, then ends the run at the last time recorded.
    pub fn play_all(&mut self, pipeline: &mut Pipeline) -> Result<()> {
        while self.step(pipeline)?.is_some() {}
        pipeline.finish(self.last_ns)
    }

    fn fill(&mut self) {
        if self.pending.is_some() || self.finished {
            return;
        }
        match self.reader.next_item() {
            Ok(Some(item)) => self.pending = Some(item),
            Ok(None) => {
                self.finished = true;
                if !self.reader.ended() {
                    self.notes.push(Note::CutShort { path: self.path.clone() });
                }
            }
            Err(broken) => {
                self.finished = true;
                self.broken = Some(broken);
            }
        }
    }
}
