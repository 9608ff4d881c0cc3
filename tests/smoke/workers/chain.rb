# chain.rb — the Ruby hop of tests/smoke/test_chain.py: consumes Python's jobs, fails one step, calls wasm.
#
# Usage: ruby chain.rb QUEUE_IN DIR. For each job: a :consumer span "consume job" (parent: extract(headers),
# Python's producer span; its baggage comes along) holding a "validate job" span that raises
# Chain::InvalidJob (rescued outside it: recorded as an exception event, status ERROR) and a :producer span
# "call wasm" whose inject goes into DIR/wasm.jsonl. Then it runs the wasm hop under Node (CHAIN_NODE,
# chain.mjs), waits, and appends {"lang": "ruby", "stats", "baggage"} to CHAIN_REPORT.
require "json"
require "polytel"

module Chain
  class InvalidJob < StandardError; end

  def self.validate(job)
    raise InvalidJob, "job #{job} has no invoice number"
  end
end

Polytel.bootstrap_worker
queue_in, dir = ARGV
out = File.join(dir, "wasm.jsonl")
seen = {}
File.open(out, "w") do |q|
  File.foreach(queue_in) do |line|
    job = JSON.parse(line)
    n = job.fetch("job")
    ctx = Polytel.extract(job.fetch("headers"))
    Polytel.span("consume job", parent: ctx, kind: :consumer, attributes: { "chain.job" => n }) do
      seen[n] = Polytel.baggage["tenant"]
      begin
        Polytel.span("validate job", attributes: { "chain.job" => n }) { Chain.validate(n) }
      rescue Chain::InvalidJob
        nil # the job goes on without its invoice check, as a lenient worker would
      end
      Polytel.span("call wasm", kind: :producer, attributes: { "chain.job" => n }) do
        q.puts(JSON.generate({ job: n, headers: Polytel.inject }))
      end
    end
  end
end
ok = system({ "OTEL_SERVICE_NAME" => "chain-wasm" }, ENV.fetch("CHAIN_NODE"), File.join(__dir__, "chain.mjs"), out)
File.open(ENV.fetch("CHAIN_REPORT"), "a") do |r|
  r.puts(JSON.generate({ lang: "ruby", stats: Polytel.stats, baggage: seen, wasm_ok: ok }))
end
exit(ok ? 0 : 1)
