// main.go — the real OpenTelemetry Collector (otelcol, OTLP receiver, debug exporter) for polytel's test
// suites, plus a tiny exporter that writes every batch it gets as one OTLP/JSON line per signal.
//
// The contrib fileexporter has no release that resolves beside collector core v0.165.0 / v1.71.0, so the
// file-writing exporter lives here. It is synchronous on purpose: a batch is written (one write(2) of one
// line, no buffering) before the pipeline returns, so when the receiver answers 200 the line is on disk, and
// a test that reads the files after its worker exited sees everything the Collector accepted.
//
// Config (YAML, as for any collector build):
//
//	exporters:
//	  jsonlines:
//	    directory: /tmp/x   # writes traces.jsonl, logs.jsonl, metrics.jsonl there (appended)
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

const version = "0.165.0"

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "polytel-otelcol",
			Description: "OpenTelemetry Collector (core " + version + ") for polytel's tests",
			Version:     version,
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatal(err)
	}
}

func components() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](debugexporter.NewFactory(),
		newJSONLinesFactory()); err != nil {
		return f, err
	}
	f.Telemetry = otelconftelemetry.NewFactory()
	return f, nil
}

// ---------------------------------------------------------------- the JSON-lines exporter

type jsonLinesConfig struct {
	Directory string `mapstructure:"directory"`
}

func (c *jsonLinesConfig) Validate() error {
	if c.Directory == "" {
		return errors.New("jsonlines: directory must be set")
	}
	return nil
}

var jsonLinesType = component.MustNewType("jsonlines")

func newJSONLinesFactory() exporter.Factory {
	return exporter.NewFactory(jsonLinesType,
		func() component.Config { return &jsonLinesConfig{} },
		exporter.WithTraces(func(_ context.Context, _ exporter.Settings, cfg component.Config) (exporter.Traces, error) {
			return newWriter(cfg, "traces.jsonl")
		}, component.StabilityLevelDevelopment),
		exporter.WithLogs(func(_ context.Context, _ exporter.Settings, cfg component.Config) (exporter.Logs, error) {
			return newWriter(cfg, "logs.jsonl")
		}, component.StabilityLevelDevelopment),
		exporter.WithMetrics(func(_ context.Context, _ exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
			return newWriter(cfg, "metrics.jsonl")
		}, component.StabilityLevelDevelopment))
}

// writer is one signal's file. One instance per signal, so each file has one writer.
type writer struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func newWriter(cfg component.Config, name string) (*writer, error) {
	c := cfg.(*jsonLinesConfig)
	return &writer{path: filepath.Join(c.Directory, name)}, nil
}

func (w *writer) Start(context.Context, component.Host) error {
	if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	w.f = f
	return nil
}

func (w *writer) Shutdown(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

func (w *writer) Capabilities() consumer.Capabilities { return consumer.Capabilities{MutatesData: false} }

// write appends one line with a single write(2): a reader never sees half a batch from a live collector, and
// a killed one leaves whole lines behind.
func (w *writer) write(b []byte, err error) error {
	if err != nil {
		return err
	}
	line := append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("jsonlines: %s is not open", w.path)
	}
	_, err = w.f.Write(line)
	return err
}

func (w *writer) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	return w.write((&ptrace.JSONMarshaler{}).MarshalTraces(td))
}

func (w *writer) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	return w.write((&plog.JSONMarshaler{}).MarshalLogs(ld))
}

func (w *writer) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	return w.write((&pmetric.JSONMarshaler{}).MarshalMetrics(md))
}
