# test_phases.rb — TELEMETRY_ENABLED unset/true/false/bad: phase at require, console lines, what is exported.
require_relative "test_helper"

class TestPhases < Minitest::Test
  DEFER_LINE = "INFO polytel: deferring full telemetry to worker bootstrap (TELEMETRY_ENABLED=true); " \
               "events are kept until then".freeze
  PRE_BODIES = ["before bootstrap via info", "before bootstrap via logger"].freeze
  # An endpoint is set (the receiver's) while TELEMETRY_ENABLED is not true: the first run says why nothing leaves.
  OFF_LINE = "INFO polytel: export is off: OTEL_EXPORTER_OTLP_ENDPOINT is set but TELEMETRY_ENABLED is not true; " \
             "set TELEMETRY_ENABLED=true to export (console-only logging until then)".freeze

  def polytel_lines(r) = r.console.grep(/\A\w+ polytel: /)

  def assert_console_only(value)
    svc = new_service("phase")
    r = run_ok("phases.rb", env: export_env(svc, enabled: value))
    j = r.json
    assert_equal "console", j["phase_at_load"]
    assert_equal "console", j["phase_at_end"]
    %w[first second].each do |k|
      assert_equal "console", j[k]["phase"]
      assert_equal "telemetry disabled", j[k]["status"]
    end
    # The records still reach the console, each once, with attributes and targets.
    assert_equal 1, r.console.count("INFO app: before bootstrap via info step=1"), r.stderr
    assert_equal 1, r.console.count("INFO ruby.logger: before bootstrap via logger"), r.stderr
    assert_equal 1, r.console.count("INFO app: after bootstrap"), r.stderr
    refute_includes r.console, DEFER_LINE
    # The worker has exited (its at_exit ran): whatever it would send has been sent.
    view = receiver.for_service(svc)
    assert_empty view["logs"] + view["spans"] + view["metrics"], "telemetry off must export nothing"
    r
  end

  def test_unset_gives_console_and_one_line_saying_why
    r = assert_console_only(nil)
    assert_equal [OFF_LINE], polytel_lines(r), "one line, and only that one, when telemetry is off: #{r.stderr}"
  end

  def test_false_gives_console
    r = assert_console_only("FALSE")
    assert_equal [OFF_LINE], polytel_lines(r), r.stderr
  end

  def test_bad_value_warns_once_and_counts_as_false
    r = assert_console_only("maybe")
    lines = polytel_lines(r)
    assert_equal 2, lines.size, r.stderr
    assert_match(/\AWARN polytel: invalid TELEMETRY_ENABLED="maybe" \(expected .*\); using false\z/, lines.first)
    assert_equal OFF_LINE, lines.last
  end

  def test_true_defers_then_bootstrap_exports_everything_exactly_once
    svc = new_service("defer")
    r = run_ok("phases.rb", env: export_env(svc, enabled: "true"))
    j = r.json
    assert_equal "deferred", j["phase_at_load"]
    assert_equal({ "phase" => "full", "status" => "started", "endpoint" => receiver.endpoint, "service" => svc },
                 j["first"].slice("phase", "status", "endpoint", "service"))
    assert_equal "already running", j["second"]["status"]
    assert_equal "full", j["second"]["phase"]
    assert_equal receiver.endpoint, j["second"]["endpoint"]
    assert_equal "full", j["phase_at_end"]

    assert_equal 1, r.console.count(DEFER_LINE), r.stderr
    full = r.console.grep(/\AINFO polytel: full telemetry: /)
    assert_equal 1, full.size, r.stderr
    assert_includes full.first, receiver.endpoint
    assert_includes full.first, %("#{svc}")
    assert_equal 1, r.console.count("INFO app: before bootstrap via info step=1"), r.stderr

    view = receiver.for_service(svc) { |v| v["logs"].size >= 3 }
    assert_no_receiver_errors(view)
    assert_equal (PRE_BODIES + ["after bootstrap"]).sort, bodies(view["logs"]).sort, "each record exactly once"
    info = view["logs"].find { |l| l["body"] == "before bootstrap via info" }
    assert_equal "app", info["scope"]
    assert_equal 9, info["severity_number"]
    assert_equal "INFO", info["severity_text"]
    assert_equal({ "step" => 1 }, info["attributes"])
    assert_equal "ruby.logger", view["logs"].find { |l| l["body"] == PRE_BODIES[1] }["scope"]
    res = info["resource"]
    assert_equal "ruby", res["telemetry.sdk.language"]
    assert_equal "polytel", res["telemetry.sdk.name"]
    assert_equal j["first"]["pid"], res["process.pid"]
  end

  def test_bootstrap_can_enable_telemetry_from_console
    svc = new_service("upgrade")
    r = run_ok("phases.rb", env: export_env(svc, enabled: nil), args: ["--enable"])
    j = r.json
    assert_equal "console", j["phase_at_load"]
    assert_equal "started", j["first"]["status"]
    assert_equal "already running", j["second"]["status"]
    view = receiver.for_service(svc) { |v| v["logs"].any? { |l| l["body"] == "after bootstrap" } }
    assert_includes bodies(view["logs"]), "after bootstrap"
    assert_equal 1, bodies(view["logs"]).count("after bootstrap")
  end

  # The status is the core's resolved configuration: what runs, not what the call asked for.
  def test_status_is_what_runs_not_what_was_asked
    svc = new_service("status")
    j = run_ok(code: <<~RUBY, env: export_env(svc)).json
      require "json"
      require "polytel"
      first = Polytel.bootstrap_worker(timeout_ms: "2500", compression: true, bsp_schedule_delay_ms: 50)
      again = Polytel.bootstrap_worker(endpoint: "http://127.0.0.1:9", protocol: "http/json")
      puts JSON.dump(first: first, again: again, shutdown: Polytel.shutdown(5000))
    RUBY
    first, again = j["first"], j["again"]
    assert_equal ["started", "full", "gzip", "otlp", nil], first.values_at("status", "phase", "compression", "exporter", "not_exporting")
    assert_equal [2500, 50, "ruby"], first["config"].values_at("timeout_ms", "bsp_schedule_delay_ms", "sdk_language")
    assert_equal %w[traces logs metrics].to_h { |s| [s, "#{receiver.endpoint}/v1/#{s}"] }, first["endpoints"]
    assert_equal ["already running", receiver.endpoint, "http/protobuf"], again.values_at("status", "endpoint", "protocol")
    # The file exporter's default directory is the core's, as in every binding.
    j = run_ok(code: 'require "json"; require "tmpdir"; require "polytel"; Dir.chdir(Dir.mktmpdir); ' \
                     'puts JSON.dump(Polytel.bootstrap_worker(exporter: "file"))',
               env: export_env(svc, "POLYTEL_CONSOLE" => "off")).json
    assert_equal ["./polytel-out", "./polytel-out"], j.values_at("endpoint", "export_dir")
    j = run_ok(code: 'require "json"; require "polytel"; puts JSON.dump(Polytel.bootstrap_worker)',
               env: export_env(svc, enabled: nil)).json
    assert_equal ["telemetry disabled", "TELEMETRY_ENABLED is not true: console only"], j.values_at("status", "not_exporting")
  end
end
