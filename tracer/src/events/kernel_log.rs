//! Messages the kernel programs log (aya-log), printed on stderr beside the agent's own.

use log::{Level, Log, Metadata, Record};

pub struct KernelLog;

impl Log for KernelLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_lowercase();
            eprintln!("tracer: kernel {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}
