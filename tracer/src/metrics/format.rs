//! The two exposition formats, and how a scraper's Accept header picks one: OpenMetrics 1.0.0
//! when it asks for it, the Prometheus text format 0.0.4 otherwise (browsers, curl, older
//! scrapers). prometheus-client writes both.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text, ending with `# EOF`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics if the Accept header names `application/openmetrics-text` with a quality at
    /// least that of the text format (`text/plain`, `text/*` or `*/*`), else text 0.0.4.
    /// Prometheus asks for both, OpenMetrics first.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.unwrap_or("").split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, v)| v.trim().parse::<f64>().unwrap_or(0.0));
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The registry's families in this format. Fails only if a scrape-time source does.
    pub fn encode(self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        match self {
            Format::Text => prometheus_text::encode(&mut out, registry)?,
            Format::OpenMetrics => text::encode(&mut out, registry)?,
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Format::{self, OpenMetrics, Text};

    #[test]
    fn negotiates_by_accept_header() {
        let cases: [(Option<&str>, Format); 10] = [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("application/openmetrics-text"), OpenMetrics),
            (Some("Application/OpenMetrics-Text; version=1.0.0; charset=utf-8"), OpenMetrics),
            // Prometheus 2.x.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            (Some("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("text/html,application/xhtml+xml,*/*;q=0.8"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }
}
