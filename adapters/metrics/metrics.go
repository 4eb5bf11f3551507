// Package metrics is healthrecord's Prometheus adapter: it implements the
// small observer hooks the HTTP adapter and the outbox dispatcher call,
// reads the database's own counts at scrape time, and serves /metrics on
// a listener of its own, never the API's.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"healthrecord/domain"
	"healthrecord/ports"
)

var _ ports.DeliveryObserver = (*Metrics)(nil)

// Stats is what the store tells at scrape time. Reading it from the
// database, rather than counting in this process, makes the numbers true
// across processes (the CLI, other servers) and restarts.
type Stats interface {
	// OutboxCounts is the number of outbox events per state (pending,
	// delivered, dead).
	OutboxCounts(ctx context.Context) (map[string]int64, error)
	// OldestPending is the creation time of the oldest pending event,
	// zero when none is pending.
	OldestPending(ctx context.Context) (time.Time, error)
	// AuditEntries is the number of audit entries ever written.
	AuditEntries(ctx context.Context) (int64, error)
}

// Metrics holds the registry and every collector. Its methods are the
// hooks the adapters call; all are safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	signins   *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	delivery  *prometheus.HistogramVec
}

// outboxStates are always exported, so an alert on dead events has a
// series to read even before the first one.
var outboxStates = []string{"pending", "delivered", "dead"}

// New registers healthrecord's metrics and the standard Go and process
// collectors. stats may be nil (no store-derived metrics).
func New(stats Stats, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrecord_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healthrecord_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrecord_signins_total",
			Help: "Sign-in attempts on /api/token/, by outcome: ok, denied (wrong credentials) or throttled.",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrecord_outbox_attempts_total",
			Help: "Delivery attempts of outbox events by this process, by sink (notification, email) and outcome (delivered, retry, dead).",
		}, []string{"sink", "outcome"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healthrecord_outbox_delivery_seconds",
			Help:    "Time from an outbox event's commit to its delivery through a sink.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600},
		}, []string{"sink"}),
	}
	for _, o := range []string{"ok", "denied", "throttled"} {
		m.signins.WithLabelValues(o)
	}
	m.reg.MustRegister(m.requests, m.durations, m.signins, m.attempts, m.delivery,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if stats != nil {
		m.reg.MustRegister(&storeCollector{stats: stats, log: log})
	}
	return m
}

// ObserveRequest counts one answered request. route must be the route
// pattern (bounded cardinality), never the raw path.
func (m *Metrics) ObserveRequest(method, route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.durations.WithLabelValues(method, route).Observe(d.Seconds())
}

// ObserveSignIn counts one sign-in by outcome: ok, denied or throttled.
func (m *Metrics) ObserveSignIn(outcome string) { m.signins.WithLabelValues(outcome).Inc() }

// ObserveDelivery counts one delivery attempt of an event through a sink
// by its outcome (delivered, retry or dead) and, when delivered, the time
// from the event's commit: it implements ports.DeliveryObserver.
func (m *Metrics) ObserveDelivery(sink, outcome string, sinceCommit time.Duration) {
	m.attempts.WithLabelValues(sink, outcome).Inc()
	if outcome == domain.OutcomeDelivered {
		m.delivery.WithLabelValues(sink).Observe(sinceCommit.Seconds())
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux
}

// Serve answers /metrics on ln until ctx ends. The server's timeouts keep
// a slow scraper from holding a goroutine.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// storeCollector reads the store's counts at each scrape.
type storeCollector struct {
	stats Stats
	log   *slog.Logger
}

var (
	outboxEventsDesc = prometheus.NewDesc("healthrecord_outbox_events",
		"Outbox events in the database, by state (pending, delivered, dead).", []string{"state"}, nil)
	outboxOldestDesc = prometheus.NewDesc("healthrecord_outbox_oldest_pending_seconds",
		"Age of the oldest pending outbox event; 0 when none is pending.", nil, nil)
	auditEntriesDesc = prometheus.NewDesc("healthrecord_audit_entries_total",
		"Audit entries written to the database (by every process).", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxEventsDesc
	ch <- outboxOldestDesc
	ch <- auditEntriesDesc
}

// Collect leaves out what it cannot read (and logs it): a scrape during a
// database hiccup still gets the process metrics.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if counts, err := c.stats.OutboxCounts(ctx); err != nil {
		c.log.Warn("metrics: outbox counts", "err", err)
	} else {
		for _, s := range outboxStates {
			ch <- prometheus.MustNewConstMetric(outboxEventsDesc, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
	if t, err := c.stats.OldestPending(ctx); err != nil {
		c.log.Warn("metrics: oldest pending event", "err", err)
	} else {
		age := 0.0
		if !t.IsZero() {
			age = max(0, time.Since(t).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(outboxOldestDesc, prometheus.GaugeValue, age)
	}
	if n, err := c.stats.AuditEntries(ctx); err != nil {
		c.log.Warn("metrics: audit entries", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(auditEntriesDesc, prometheus.CounterValue, float64(n))
	}
}
