# bench_ruby.rb — the Ruby binding beside its anchors, one run, one table (never asserts timings).
#
# Measures recording cost: full telemetry (phase 2) with POLYTEL_EXPORTER=none and
# POLYTEL_CONSOLE=off, so nothing is formatted, printed or sent on the calling thread or after.
# Run: GEM_HOME=build/ruby-gems ruby bench/bench_ruby.rb   (make bench-ruby does this)
# Env: BENCH_N (iterations, default 200000), BENCH_REPEAT (best of, default 5), BENCH_JSON (output path).
require "json"
require "logger"
require "rbconfig"
require "fileutils"

ENV["POLYTEL_EXPORTER"] = "none"
ENV["POLYTEL_CONSOLE"] = "off"
ENV["TELEMETRY_ENABLED"] = "true"
require "polytel"

N = Integer(ENV.fetch("BENCH_N", "200000"))
REPEAT = Integer(ENV.fetch("BENCH_REPEAT", "5"))

boot = Polytel.bootstrap_worker(telemetry_enabled: true, exporter: :none, console: :off)
abort "bench_ruby: bootstrap failed: #{boot.inspect}" unless boot[:phase] == :full

# The calling thread's CPU time: the cost the product is about (the export thread's work is not the caller's),
# and on a shared machine it leaves out the time the thread waited for a core.
def clock = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID, :nanosecond)

# Best of REPEAT runs of N iterations, in ns per iteration (the while loop included on both sides).
def measure
  best = nil
  REPEAT.times do
    GC.start
    t0 = clock
    yield N
    dt = (clock - t0).fdiv(N)
    best = dt if best.nil? || dt < best
  end
  best
end

# Cases measured in turns (one run of each per round, best of REPEAT rounds each): a ratio between them is
# then taken under the same machine load, which a shared machine changes from one second to the next.
def measure_alternating(cases)
  best = {}
  REPEAT.times do
    cases.each do |k, c|
      GC.start
      t0 = clock
      c.call(N)
      dt = (clock - t0).fdiv(N)
      best[k] = dt if best[k].nil? || dt < best[k]
    end
  end
  best
end

def empty_block(_name) = yield

# An open File, not the File::NULL path: given that path, ::Logger keeps no device and returns at once.
stdlib = Logger.new(File.open(File::NULL, "w"))
nodevice = Logger.new(File::NULL)
bridge = Polytel::Logger.new
msg = "request handled"

# Warm up every path once (thread registration, method caches).
empty_block("work") {}
Polytel.span("work") {}
Polytel.info(msg)
bridge.info(msg)
stdlib.info(msg)

r = {}
# The span block beside its anchor, in turns. A block without parameters gets no Span object (the span
# lives in the fiber's span stack until Polytel.current_span asks for one); `{ |_s| }` shows the object's cost
# (its row avoids a literal | in the markdown table).
r.merge!(measure_alternating(
  empty_block: ->(n) { i = 0; while i < n; empty_block("work") {}; i += 1; end },
  span_block: ->(n) { i = 0; while i < n; Polytel.span("work") {}; i += 1; end },
  span_block_arg: ->(n) { i = 0; while i < n; Polytel.span("work") { |_s| }; i += 1; end }
))
r[:stdlib_logger] = measure { |n| i = 0; while i < n; stdlib.info(msg); i += 1; end }
r[:logger_no_device] = measure { |n| i = 0; while i < n; nodevice.info(msg); i += 1; end }
r[:polytel_info] = measure { |n| i = 0; while i < n; Polytel.info(msg); i += 1; end }
r[:polytel_logger] = measure { |n| i = 0; while i < n; bridge.info(msg); i += 1; end }
r[:polytel_info_attrs] = measure { |n| i = 0; while i < n; Polytel.info(msg, user: 42, path: "/x"); i += 1; end }
r[:counter_add] = measure { |n| i = 0; while i < n; Polytel.counter_add("jobs"); i += 1; end }

# Trace context: inject() inside a span and extract() of its carrier, beside copying that carrier (a Hash dup).
carrier = Polytel.span("ctx") { Polytel.inject }
Polytel.span("ctx") do
  Polytel.inject({})
  r[:inject] = measure { |n| i = 0; while i < n; Polytel.inject({}); i += 1; end }
end
Polytel.extract(carrier)
r[:extract] = measure { |n| i = 0; while i < n; Polytel.extract(carrier); i += 1; end }
r[:hash_copy] = measure { |n| i = 0; while i < n; carrier.dup; i += 1; end }

# require cost in a fresh process each time (median of 5), beside require "logger".
def require_ms(lib)
  code = "t = Process.clock_gettime(Process::CLOCK_MONOTONIC); require #{lib.inspect}; " \
         "print((Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) * 1000)"
  env = { "POLYTEL_CONSOLE" => "off", "TELEMETRY_ENABLED" => nil }
  Array.new(5) { IO.popen(env, [RbConfig.ruby, "-e", code], &:read).to_f }.sort[2]
end
r[:require_polytel_ms] = require_ms("polytel")
r[:require_logger_ms] = require_ms("logger")

stats = Polytel.stats
Polytel.shutdown(2000)

rows = [
  ["Polytel.span(\"work\") { }", r[:span_block], "empty block (method + yield)", r[:empty_block], 3.0],
  ["Polytel.span(\"work\"), block with a parameter (a Span object)", r[:span_block_arg], "empty block (method + yield)", r[:empty_block], nil],
  ["Polytel.info(msg)", r[:polytel_info], "stdlib Logger#info to /dev/null", r[:stdlib_logger], 0.1],
  ["Polytel::Logger#info(msg)", r[:polytel_logger], "stdlib Logger#info to /dev/null", r[:stdlib_logger], 0.3],
  ["Polytel.info(msg, 2 attrs)", r[:polytel_info_attrs], "stdlib Logger#info to /dev/null", r[:stdlib_logger], nil],
  ["Polytel.counter_add(\"jobs\")", r[:counter_add], "empty block (method + yield)", r[:empty_block], nil],
  ["Polytel.info(msg)", r[:polytel_info], "Logger.new(File::NULL) (no device)", r[:logger_no_device], nil],
  ["Polytel.inject({}) (in a span)", r[:inject], "carrier.dup (a 1-key Hash)", r[:hash_copy], nil],
  ["Polytel.extract(carrier)", r[:extract], "carrier.dup (a 1-key Hash)", r[:hash_copy], nil]
]

# A markdown table (bench/run.sh keeps it; bench/report.py charts the rows that carry a target).
puts "Ruby binding — full telemetry, POLYTEL_EXPORTER=none, POLYTEL_CONSOLE=off: recording cost only."
puts "ruby #{RUBY_VERSION}, polytel #{Polytel::VERSION}, #{N} iterations, best of #{REPEAT}, ns of the calling thread's " \
     "CPU time per call (loop included); the span rows and their anchor measured in turns."
puts
puts "| polytel | ns/op | beside | ns/op | ratio | target |"
puts "|---|---:|---|---:|---:|---|"
rows.each do |name, v, base, bv, target|
  ratio = v / bv
  mark = target.nil? ? "" : format("<= %gx (%s)", target, ratio <= target ? "met" : "missed")
  puts format("| %s | %.1f | %s | %.1f | %.2fx | %s |", name, v, base, bv, ratio, mark)
end
puts format("| require \"polytel\" (phase 1 included) | %.2f ms | require \"logger\" | %.2f ms | %.2fx | |",
            r[:require_polytel_ms], r[:require_logger_ms], r[:require_polytel_ms] / r[:require_logger_ms])
puts
puts "recorded #{stats[:recorded]}, dropped #{stats[:dropped]} (buffer full #{stats[:dropped_buffer_full]})"

out = ENV.fetch("BENCH_JSON", File.expand_path("out/bench_ruby.json", __dir__))
FileUtils.mkdir_p(File.dirname(out))
File.write(out, JSON.pretty_generate(r.merge(ruby: RUBY_VERSION, n: N, repeat: REPEAT, stats: stats)))
$stderr.puts "written: #{out}"
