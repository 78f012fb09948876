//! The HTML report: one self-contained file that opens offline by
//! double-click. The text (summary, leaking and failing connections with
//! reason and fix, DNS problems, the table of every connection) is rendered
//! here, escaped, so it reads and prints without scripts; the charts (a
//! Sankey of category/dependency -> expected next hop -> observed path, the
//! topology as a graph with each path coloured by verdict, traffic over
//! time) are Apache ECharts, embedded from `assets/echarts`, fed with the
//! aggregates computed here. `assets/report/` holds the page's CSS (light,
//! dark, print) and the small script that feeds ECharts and sorts/filters
//! the table. Reads only the [`Summary`] model; colours and fixes are the
//! verdicts' own ([`crate::verdict::Verdict::colour`], `fix`).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Context`], [`render`]: the page in the order of its sections, and the charts' data |
//! | [`page`] | the page's sections, one function each: head, header, summary, problems, chart frames, DNS, table, time, footer |
//! | [`markup`] | escaping, badges, a judgement's colour, times and byte counts |
//! | [`sankey`] | the Sankey's model |
//! | [`graph`] | the topology drawing's model |
//! | [`timeline`] | the traffic-over-time model |
//! | [`index`] | the index page of `lab run --html DIR` ([`IndexEntry`]) |

mod graph;
mod index;
mod markup;
mod page;
mod sankey;
mod timeline;

pub(crate) use markup::esc;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub(crate) use index::{IndexEntry, index};

use self::{graph::Graph, page::Page, sankey::Sankey, timeline::Timeline};
use super::{Judgement, Summary};
use crate::{topology::Topology, verdict::Verdict};

/// Apache ECharts 6.1.0 (`dist/echarts.min.js`, Apache-2.0), vendored.
static ECHARTS: &str = include_str!("../../../assets/echarts/echarts.min.js");
static STYLE: &str = include_str!("../../../assets/report/report.css");
static SCRIPT: &str = include_str!("../../../assets/report/report.js");

/// What the report knows besides the summary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Context<'a> {
    /// The topology's name (from the files' metadata or the topology).
    pub topology_name: Option<&'a str>,
    /// The topology itself, when given: the drawing then shows its subnets,
    /// private endpoints, gateway and appliance.
    pub topology: Option<&'a Topology>,
    /// When the report was made (RFC 3339).
    pub generated: String,
}

impl<'a> Context<'a> {
    /// A page made now, of the topology `topology_name` (else the
    /// topology's own name), drawing `topology` when given.
    pub(crate) fn new(topology_name: Option<&'a str>, topology: Option<&'a Topology>) -> Self {
        Self {
            topology_name,
            topology,
            generated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// What the page's script draws.
#[derive(Serialize)]
struct Data {
    sankey: Sankey,
    graph: Graph,
    timeline: Timeline,
    colours: BTreeMap<Judgement, &'static str>,
}

/// The charts' data as JSON that is safe inside a `<script>` element, and
/// the timeline's bucket length in seconds.
fn chart_data(summary: &Summary, context: &Context<'_>) -> (String, f64) {
    let colours = Verdict::ALL
        .map(Judgement::Verdict)
        .into_iter()
        .chain([Judgement::Unclassified])
        .map(|j| (j, markup::colour(j)))
        .collect();
    let timeline = timeline::timeline(summary);
    let bucket_seconds = timeline.bucket_seconds;
    let data = Data {
        timeline,
        sankey: sankey::sankey(summary),
        graph: graph::graph(summary, context.topology),
        colours,
    };
    // `<` escaped so no string in the data can close the script element.
    let json = serde_json::to_string(&data)
        .expect("plain data")
        .replace('<', "\\u003c");
    (json, bucket_seconds)
}

/// Renders the whole page, section by section.
pub(crate) fn render(summary: &Summary, context: &Context<'_>) -> String {
    let (data, bucket_seconds) = chart_data(summary, context);
    let page = Page::new(summary, context);
    let mut h = String::with_capacity(ECHARTS.len() + data.len() + 64 * 1024);
    page.head(&mut h);
    page.header(&mut h);
    page.summary(&mut h);
    page.problems(&mut h);
    page.chart_frames(&mut h);
    page.dns(&mut h);
    page.table(&mut h);
    page.time(&mut h, bucket_seconds);
    page.footer(&mut h, &data);
    h
}
