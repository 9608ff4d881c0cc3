# logger.rb — the ::Logger bridge: bodies, severities, progname, the logger's own level, a log device, spans.
require "json"
require "stringio"
require "polytel"

Polytel.bootstrap_worker
out = {}
log = Polytel::Logger.new
out["default_target"] = log.target
log.info("default target")

log = Polytel::Logger.new(nil, target: "billing", progname: "worker-7")
log.debug("a debug line")
log.info("100% literal %s %d, never a format")
log.warn { "from a block" }
log.error(ArgumentError.new("boom"))
begin
  raise KeyError, "raised and rescued"
rescue KeyError => e
  log.error(e)
end
log.fatal("a fatal line")
log.unknown("an unknown line")
log.info("custom-prog") { "block message, custom progname" }
log.add(Logger::INFO, nil, "progname used as the message")
log.info(k: 1)
log << "raw line\n"

quiet = Polytel::Logger.new(nil, target: "quiet")
quiet.debug { out["debug_block_ran"] = true; "expensive" } # below POLYTEL_LOG_LEVEL=info and export

log.level = Logger::WARN
log.info("filtered by the logger's level")
log.warn("kept at WARN")

io = StringIO.new
both = Polytel::Logger.new(io, target: "both")
both.info("to the device and to polytel")
out["device"] = io.string

Polytel.span("logged-in-span") do |span|
  out["span_id"] = span.span_id
  out["trace_id"] = span.trace_id
  log.warn("inside a span")
end
puts JSON.dump(out)
