//! `/metrics` in the Prometheus text format (`prometheus-client`): the API server's request
//! counts and latencies by verb, resource and code (kube-apiserver's names), requests in
//! flight, open watches, the store member's metrics (commit and apply latency, Raft term,
//! leader changes, log indexes), and each actor's mailbox depth and restarts.
//!
//! Request metrics are recorded where every request is audited, so no caller escapes them.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use navarch_actors::{ActorPath, Registry as Actors};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    subresource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    verb: String,
    resource: String,
    subresource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InflightLabels {
    request_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    resource: String,
}

/// The API server's own metrics; clones share the values.
#[derive(Clone)]
pub(crate) struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    inflight: Family<InflightLabels, Gauge>,
    watches: Family<WatchLabels, Gauge>,
}

fn duration_histogram() -> Histogram {
    // 0.5 ms to about 16 s, doubling.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

impl ApiMetrics {
    fn new() -> ApiMetrics {
        ApiMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            inflight: Family::default(),
            watches: Family::default(),
        }
    }

    pub(crate) fn request(
        &self,
        verb: &str,
        resource: &str,
        subresource: &str,
        code: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_uppercase(),
                resource: resource.to_string(),
                subresource: subresource.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels {
                verb: verb.to_uppercase(),
                resource: resource.to_string(),
                subresource: subresource.to_string(),
            })
            .observe(seconds);
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn in_flight(&self, mutating: bool) -> GaugeGuard {
        let kind = if mutating { "mutating" } else { "readOnly" };
        GaugeGuard::up(
            self.inflight
                .get_or_create(&InflightLabels {
                    request_kind: kind.to_string(),
                })
                .clone(),
        )
    }

    /// Counts an open watch for as long as `stream` lives.
    pub(crate) fn watching<S>(&self, resource: &str, stream: S) -> Counted<S> {
        let g = self
            .watches
            .get_or_create(&WatchLabels {
                resource: resource.to_string(),
            })
            .clone();
        Counted {
            inner: stream,
            _guard: GaugeGuard::up(g),
        }
    }
}

/// A gauge raised while this lives.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn up(g: Gauge) -> GaugeGuard {
        g.inc();
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl fmt::Debug for GaugeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GaugeGuard")
    }
}

/// A stream that keeps a gauge raised while it lives.
pub(crate) struct Counted<S> {
    inner: S,
    _guard: GaugeGuard,
}

impl<S: Stream + Unpin> Stream for Counted<S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Every actor's mailbox depth and restarts, read from the actor registry at scrape time.
struct ActorCollector {
    actors: Actors,
}

impl fmt::Debug for ActorCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActorCollector")
    }
}

impl Collector for ActorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let all = self.actors.list(&ActorPath::root());
        let mut depth = encoder.encode_descriptor(
            "navarch_actor_mailbox_depth",
            "Messages waiting in an actor's mailbox",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for a in &all {
            let labels = [("path", a.path.as_str())];
            ConstGauge::new(a.mailbox_depth as i64).encode(depth.encode_family(&labels)?)?;
        }
        let mut restarts = encoder.encode_descriptor(
            "navarch_actor_restarts",
            "Times an actor was restarted by its supervisor",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for a in &all {
            let labels = [("path", a.path.as_str())];
            ConstGauge::new(i64::from(a.restarts)).encode(restarts.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The registry `/metrics` encodes, and the API server's own metrics in it.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) api: ApiMetrics,
}

impl Metrics {
    pub(crate) fn new(member: &navarch_store::Member, actors: Option<Actors>) -> Metrics {
        let mut registry = Registry::default();
        let api = ApiMetrics::new();
        registry.register(
            "apiserver_request",
            "Requests by verb, resource, subresource and HTTP code",
            api.requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Request latency by verb, resource and subresource",
            api.duration.clone(),
        );
        registry.register(
            "apiserver_current_inflight_requests",
            "Requests in flight by kind (readOnly, mutating), watches excluded",
            api.inflight.clone(),
        );
        registry.register(
            "apiserver_longrunning_requests",
            "Open watches by resource",
            api.watches.clone(),
        );
        member.register_metrics(&mut registry);
        if let Some(actors) = actors {
            registry.register_collector(Box::new(ActorCollector { actors }));
        }
        Metrics { registry, api }
    }

    /// The Prometheus text.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics did not encode");
        }
        out
    }
}
