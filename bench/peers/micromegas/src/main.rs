//! bench-micromegas — micromegas-tracing 0.33.0 timed with bench/bench_timing.h's loop, ported line for line:
//! best of RUNS runs of N calls, each run on a fresh thread after 1000 warm-up calls, beside one rdtsc timed
//! the same way. Every event is counted in the sink and checked against the calls made. Prints one JSON line.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use micromegas_tracing::dispatch::{
    flush_log_buffer, flush_metrics_buffer, init_event_dispatch, init_thread_stream, shutdown_dispatch,
    unregister_thread_stream,
};
use micromegas_tracing::event::{EventSink, TracingBlock};
use micromegas_tracing::levels::{set_max_level, LevelFilter};
use micromegas_tracing::logs::{LogBlock, LogMetadata, LogStream};
use micromegas_tracing::metrics::{MetricsBlock, MetricsStream};
use micromegas_tracing::prelude::*;
use micromegas_tracing::property_set::DynProperty;
use micromegas_tracing::spans::{ThreadBlock, ThreadStream};
use micromegas_tracing::{imetric, info, span_scope};

/// The calling thread's CPU time, as bench_timing.h reads it (libc's clock_gettime; std has no thread clock).
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
fn thread_cpu_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec-shaped struct; the clock id exists on Linux.
    unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

const N: usize = 4_000_000;
const RUNS: usize = 5;
const WARMUP: usize = 1000;

/// Counts what reaches the sink, per stream kind, and keeps nothing (blocks are freed on the spot).
/// `on_log_enabled` says yes to every log: micromegas' own NullEventSink says no, and records nothing.
#[derive(Default)]
struct CountingSink {
    thread_events: AtomicU64,
    log_events: AtomicU64,
    metric_events: AtomicU64,
}

impl EventSink for CountingSink {
    fn on_startup(&self, _: Arc<ProcessInfo>) {}
    fn on_shutdown(&self) {}
    fn on_log_enabled(&self, _: &LogMetadata) -> bool {
        true
    }
    fn on_log(&self, _: &LogMetadata, _: &[DynProperty<'_>], _: i64, _: std::fmt::Arguments<'_>) {}
    fn on_init_log_stream(&self, _: &LogStream) {}
    fn on_process_log_block(&self, b: Arc<LogBlock>) {
        self.log_events.fetch_add(b.nb_objects() as u64, Ordering::Relaxed);
    }
    fn on_init_metrics_stream(&self, _: &MetricsStream) {}
    fn on_process_metrics_block(&self, b: Arc<MetricsBlock>) {
        self.metric_events.fetch_add(b.nb_objects() as u64, Ordering::Relaxed);
    }
    fn on_init_thread_stream(&self, _: &ThreadStream) {}
    fn on_process_thread_block(&self, b: Arc<ThreadBlock>) {
        self.thread_events.fetch_add(b.nb_objects() as u64, Ordering::Relaxed);
    }
    fn is_busy(&self) -> bool {
        false
    }
}

#[inline(never)]
fn op_rdtsc(n: usize) {
    let mut acc: u64 = 0;
    for _ in 0..n {
        // SAFETY: rdtsc has no preconditions on x86_64.
        acc = acc.wrapping_add(unsafe { core::arch::x86_64::_rdtsc() });
    }
    std::hint::black_box(acc);
}

#[inline(never)]
fn op_span(n: usize) {
    for _ in 0..n {
        span_scope!("bench.span");
    }
}

#[inline(never)]
fn op_log_static(n: usize) {
    for _ in 0..n {
        info!("a static message");
    }
}

#[inline(never)]
fn op_log_2ints(n: usize) {
    for i in 0..n {
        info!("request {} took {} us", i as i32, (n - i) as i32);
    }
}

#[inline(never)]
fn op_counter(n: usize) {
    for _ in 0..n {
        imetric!("bench.counter", "1", 1);
    }
}

/// One run on a fresh thread with its own thread stream, as micromegas requires; unregistered at the end
/// (which flushes it), so the dispatch keeps no pointer to a dead thread's stream. (wall ns, CPU ns)
fn run_job(f: fn(usize)) -> (f64, f64) {
    std::thread::spawn(move || {
        init_thread_stream();
        f(WARMUP);
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        f(N);
        let ns = t0.elapsed().as_nanos() as f64;
        let cpu = (thread_cpu_ns() - c0) as f64;
        unregister_thread_stream();
        (ns, cpu)
    })
    .join()
    .unwrap()
}

/// Best of RUNS by each clock, ns per call.
fn measure(f: fn(usize)) -> (f64, f64) {
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..RUNS {
        let (wall, cpu) = run_job(f);
        best = best.min(wall / N as f64);
        best_cpu = best_cpu.min(cpu / N as f64);
        flush_log_buffer();
        flush_metrics_buffer();
    }
    (best, best_cpu)
}

fn main() {
    let sink = Arc::new(CountingSink::default());
    // 10 MiB blocks for every stream, as micromegas' own dispatch benchmark; CPU (span) tracing on.
    init_event_dispatch(10 << 20, 10 << 20, 10 << 20, sink.clone(), HashMap::new(), true)
        .expect("micromegas: init_event_dispatch");
    // The level starts at Off, where info! records nothing.
    set_max_level(LevelFilter::Trace);

    let (tsc, tsc_cpu) = measure(op_rdtsc);
    let calls = ((N + WARMUP) * RUNS) as u64;
    // (key, op, events per call, counter of the sink that receives them)
    let ops: [(&str, fn(usize), u64, &AtomicU64); 4] = [
        ("span", op_span, 2, &sink.thread_events),
        ("log_static", op_log_static, 1, &sink.log_events),
        ("log_2ints", op_log_2ints, 1, &sink.log_events),
        ("counter", op_counter, 1, &sink.metric_events),
    ];
    let mut out = Vec::new();
    let mut ok = true;
    for (key, f, per_call, counter) in ops {
        let before = counter.load(Ordering::Relaxed);
        let (ns, cpu_ns) = measure(f);
        let recorded = counter.load(Ordering::Relaxed) - before;
        let expected = calls * per_call;
        ok &= recorded == expected;
        out.push(format!(
            "\"{key}\": {{\"ns\": {ns:.3}, \"cpu_ns\": {cpu_ns:.3}, \"calls\": {calls}, \"expected\": {expected}, \"recorded\": {recorded}, \"dropped\": {}}}",
            expected.saturating_sub(recorded)
        ));
    }
    // The anchor again after the operations, the lower of each (bench_timing.h's bench_anchor_min).
    let (tsc2, tsc2_cpu) = measure(op_rdtsc);
    let (tsc, tsc_cpu) = (tsc.min(tsc2), tsc_cpu.min(tsc2_cpu));
    shutdown_dispatch();
    println!(
        "{{\"peer\": \"micromegas\", \"version\": \"micromegas-tracing 0.33.0\", \"anchor\": \"rdtsc\", \"rdtsc_ns\": {tsc:.3}, \"rdtsc_cpu_ns\": {tsc_cpu:.3}, \"ops\": {{{}}}, \"verified\": {ok}}}",
        out.join(", ")
    );
}
