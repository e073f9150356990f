package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds radflow's Prometheus metrics on its own registry. Every
// method is safe on a nil *Metrics (no-op), so packages can take an
// optional *Metrics.
type Metrics struct {
	Registry *prometheus.Registry
	// radflow_ingest_instances_total{source,outcome}: source "dimse" |
	// "dicomweb" | "cli"; outcome "stored" | "duplicate" | "rejected" | "failed".
	IngestInstances *prometheus.CounterVec
	// radflow_cstore_blob_writes_total{path}: C-STORE data sets handed to
	// ingest, by when their blob was written: "while_receiving" (as the
	// PDVs arrived) or "after_receiving" (an instance already stored,
	// backpressure, a data set that outgrew memory).
	CStoreBlobWrites *prometheus.CounterVec
	// radflow_stage_duration_seconds{stage}: e.g. "ingest", "decode",
	// "preprocess", "inference", "sr".
	StageDuration *prometheus.HistogramVec
	// radflow_queue_depth: jobs waiting (available + scheduled).
	QueueDepth prometheus.Gauge
	// radflow_job_failures_total{reason}: e.g. "decode", "inference", "timeout".
	JobFailures *prometheus.CounterVec
	// radflow_http_requests_total{route,code} and
	// radflow_http_request_duration_seconds{route}: route is the pattern.
	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
}

// NewMetrics registers the metrics (and the Go and process collectors) on
// a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		IngestInstances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radflow_ingest_instances_total", Help: "DICOM instances received, by source and outcome.",
		}, []string{"source", "outcome"}),
		CStoreBlobWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radflow_cstore_blob_writes_total", Help: "C-STORE data sets, by whether their blob was written while they arrived.",
		}, []string{"path"}),
		StageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "radflow_stage_duration_seconds", Help: "Duration of pipeline stages in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14), // 1 ms .. ~150 s
		}, []string{"stage"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radflow_queue_depth", Help: "Jobs waiting in the queue.",
		}),
		JobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radflow_job_failures_total", Help: "Failed jobs, by reason.",
		}, []string{"reason"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radflow_http_requests_total", Help: "HTTP requests, by route pattern and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "radflow_http_request_duration_seconds", Help: "HTTP request duration in seconds, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"route"}),
	}
	m.Registry.MustRegister(m.IngestInstances, m.CStoreBlobWrites, m.StageDuration, m.QueueDepth, m.JobFailures, m.HTTPRequests, m.HTTPDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveIngest counts one instance received from source with outcome.
func (m *Metrics) ObserveIngest(source, outcome string) {
	if m != nil {
		m.IngestInstances.WithLabelValues(source, outcome).Inc()
	}
}

// ObserveCStoreBlobWrite counts one C-STORE data set handed to ingest,
// whose blob was written while it arrived (early) or after.
func (m *Metrics) ObserveCStoreBlobWrite(early bool) {
	if m != nil {
		path := "after_receiving"
		if early {
			path = "while_receiving"
		}
		m.CStoreBlobWrites.WithLabelValues(path).Inc()
	}
}

// ObserveStage records the duration of one pipeline stage.
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	if m != nil {
		m.StageDuration.WithLabelValues(stage).Observe(d.Seconds())
	}
}

// SetQueueDepth sets the number of waiting jobs.
func (m *Metrics) SetQueueDepth(n int) {
	if m != nil {
		m.QueueDepth.Set(float64(n))
	}
}

// JobFailed counts one failed job with reason (a small fixed vocabulary,
// never free text: label cardinality).
func (m *Metrics) JobFailed(reason string) {
	if m != nil {
		m.JobFailures.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) observeHTTP(route string, code int, d time.Duration) {
	if m != nil {
		m.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		m.HTTPDuration.WithLabelValues(route).Observe(d.Seconds())
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
