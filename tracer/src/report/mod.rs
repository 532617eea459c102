//! `tracer report FILE`: per-connection charts of a recording, in the spirit of Wireshark's
//! window-scaling graph but from the kernel's view: the window this host advertised, the
//! peer's window, bytes in flight, the receive buffer and unread bytes as step lines over time,
//! with zero-window episodes, probes, drops and alerts marked.
//!
//! - `collect`: the recording through the connection table and alert engine, as replay does;
//! - `series`: one connection's events as step series, spans and marks;
//! - `scale`, `downsample`: axes, ticks, and thinning dense series;
//! - `svg`: one chart; `html`: the page; `text`: escaping and small formatting.

mod collect;
mod downsample;
mod html;
mod scale;
mod series;
mod svg;
mod text;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

use crate::alerts::Thresholds;

/// What the report is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One self-contained page.
    Html,
    /// One file per connection, in a directory.
    Svg,
}

/// Renders the report of the recording `input` into `out` (default: beside it). A recording
/// that breaks part-way is still charted up to the break, then the break is returned as the
/// error (as replay does).
pub fn run(input: &Path, out: Option<&Path>, format: Format, thresholds: Thresholds) -> Result<()> {
    let rec = collect::collect(input, thresholds)?;
    let file = input
        .file_name()
        .map_or_else(|| input.display().to_string(), |n| n.to_string_lossy().into_owned());
    if rec.charts.is_empty() {
        if let Some(broken) = rec.broken {
            return Err(broken.into());
        }
        bail!(
            "{}: no connection to chart: the recording has {} event(s) and none of them is a \
             window, zero-window, probe, drop or buffer sample",
            input.display(),
            rec.events
        );
    }
    let written = match format {
        Format::Html => {
            let out = out.map_or_else(|| input.with_extension("html"), Path::to_path_buf);
            refuse_input(&out, input)?;
            std::fs::write(&out, html::page(&rec, &file))
                .with_context(|| format!("failed to write the report {}", out.display()))?;
            out
        }
        Format::Svg => {
            let dir = out.map_or_else(|| svg_dir(input), Path::to_path_buf);
            refuse_input(&dir, input)?;
            write_svgs(&rec, &file, &dir)?;
            dir
        }
    };
    eprintln!(
        "tracer: wrote {} ({} connection(s), from {} recorded on kernel {})",
        written.display(),
        rec.charts.len(),
        input.display(),
        rec.header.kernel
    );
    if let Some(broken) = rec.broken {
        return Err(broken.into());
    }
    for note in &rec.notes {
        eprintln!("tracer: warning: {note}");
    }
    Ok(())
}

/// Writing over the recording would lose it.
fn refuse_input(out: &Path, input: &Path) -> Result<()> {
    if out == input {
        bail!("refusing to write the report over the recording {}", input.display());
    }
    Ok(())
}

/// FILE's stem + "-report", next to FILE.
fn svg_dir(file: &Path) -> PathBuf {
    let stem =
        file.file_stem().map_or_else(|| "tracer".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}-report"))
}

/// One SVG per connection, named by its 4-tuple (with -2, -3... when a 4-tuple was reused).
fn write_svgs(rec: &collect::Recording, file: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create the report directory {}", dir.display()))?;
    let source = svg::Source { kernel: &rec.header.kernel, file };
    let mut used = BTreeSet::new();
    for c in &rec.charts {
        let stem = text::file_stem(&c.data.tuple);
        let mut name = format!("{stem}.svg");
        let mut n = 1;
        while !used.insert(name.clone()) {
            n += 1;
            name = format!("{stem}-{n}.svg");
        }
        let path = dir.join(&name);
        std::fs::write(&path, svg::chart(c, &source))
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}
