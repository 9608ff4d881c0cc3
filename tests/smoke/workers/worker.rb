# worker.rb — runs tests/smoke/scenario.json step by step with the Ruby binding (the polytel gem).
#
# Usage: GEM_HOME=build/ruby-gems ruby worker.rb [SCENARIO]  (default: ../scenario.json). Configuration comes
# from the environment (TELEMETRY_ENABLED, OTEL_*, POLYTEL_*). With SMOKE_REPORT=FILE, each process appends
# JSON lines saying what it observed (phase after load/bootstrap, the fork child's pid and exit status).
require "json"

class SmokeWorker
  def initialize(scenario)
    @target = scenario.fetch("target")
    @spans = [] # the open spans, innermost last
  end

  def note(**kv)
    path = ENV["SMOKE_REPORT"]
    return if path.nil? || path.empty?
    File.open(path, "a") { |f| f.puts(JSON.generate({ pid: Process.pid }.merge(kv))) }
  end

  def run(steps)
    steps.each { |step| send("op_#{step.fetch("op")}", step) }
  end

  def op_load(_step)
    require "polytel" # phase 1
    note(event: "load", phase: Polytel.phase.to_s)
  end

  def op_log(step)
    Polytel.log(step.fetch("level").to_sym, @target, step.fetch("body"), **step.fetch("attributes", {}))
  end

  def op_bootstrap(_step)
    st = Polytel.bootstrap_worker
    note(event: "bootstrap", phase: Polytel.phase.to_s, status: st[:status], config: st[:config])
  end

  def op_span(step)
    Polytel.span(step.fetch("name"), **step.fetch("attributes", {})) do |span|
      @spans.push(span)
      begin
        run(step.fetch("steps"))
      ensure
        @spans.pop
      end
    end
  end

  def op_set_attribute(step)
    @spans.last.set_attribute(step.fetch("key"), step.fetch("value"))
  end

  def op_counter_add(step)
    Polytel.counter_add(step.fetch("name"), step.fetch("value"), unit: step.fetch("unit", ""),
                                                                 **step.fetch("attributes", {}))
  end

  def op_fork(step)
    pid = fork do
      note(event: "fork-child")
      run(step.fetch("steps"))
    end
    Process.wait(pid)
    note(event: "fork", child_pid: pid, child_exit: $?.exitstatus)
  end

  # No shutdown here: polytel's at_exit hook flushes, in the parent and in the fork child alike.
  def op_exit(step)
    exit(step.fetch("code", 0))
  end
end

path = ARGV[0] || File.join(__dir__, "..", "scenario.json")
scenario = JSON.parse(File.read(path))
SmokeWorker.new(scenario).run(scenario.fetch("steps"))
