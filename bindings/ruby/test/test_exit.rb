# test_exit.rb — exit without shutdown loses nothing (parent and fork child); shutdown with no collector is bounded.
require_relative "test_helper"

class TestExit < Minitest::Test
  def test_exit_without_shutdown_loses_nothing
    svc = new_service("exit")
    n = 2000
    r = run_worker("exit.rb", env: export_env(svc), args: [n.to_s, "3"])
    assert_equal 3, r.status.exitstatus, "the at_exit hook must not change the exit status\n#{r.stderr}"
    j = r.json
    assert_equal 0, j["child_status"]
    view = receiver.for_service(svc) { |v| v["logs"].size >= n + 100 }
    assert_no_receiver_errors(view)

    logs = view["logs"]
    assert_equal (0...n).map { |i| "exit #{i}" }.sort, bodies(logs).grep(/\Aexit /).sort
    # fork { } children run at_exit when they leave the block normally.
    child = logs.select { |l| l["body"].start_with?("child ") }
    assert_equal (0...100).map { |i| "child #{i}" }.sort, bodies(child).sort
    assert child.all? { |l| l["resource"]["process.pid"] == j["child_pid"] }
    assert_equal n / 10, view["spans"].count { |s| s["name"] == "exit-span" }
    # exit(3) inside a span: a failing exit, so the span ends with an error, and is delivered.
    exiting = view["spans"].select { |s| s["name"] == "exit-in-span" }
    assert_equal 1, exiting.size
    assert_equal [2, "SystemExit"], [exiting.first["status_code"], exiting.first["attributes"]["exception.type"]]
    count = view["metrics"].select { |m| m["name"] == "rb.exit.count" }.max_by { |m| m["time_ns"] }
    assert_equal n, count["value"]
  end

  # Ruby turns SIGTERM into a SignalException: the span ends (error) and at_exit delivers everything.
  def test_sigterm_loses_nothing
    svc = new_service("term")
    r = run_worker("sigterm.rb", env: export_env(svc), hang_limit: 60)
    assert_equal 15, r.status.termsig, r.stderr
    view = receiver.for_service(svc) { |v| v["logs"].size >= 500 && v["spans"].any? }
    assert_equal (0...500).map { |i| "before term #{i}" }.sort, bodies(view["logs"]).sort
    span = view["spans"].find { |s| s["name"] == "terminated" }
    assert_equal [2, "SignalException"], [span["status_code"], span["attributes"]["exception.type"]]
  end

  def test_bad_exit_timeout_warns_once_and_keeps_the_default
    r = run_ok(code: 'require "polytel"; p Polytel.exit_timeout_ms', env: { "POLYTEL_EXIT_TIMEOUT_MS" => "soon" })
    assert_equal "5000", r.stdout.strip
    assert_equal ['WARN polytel: invalid POLYTEL_EXIT_TIMEOUT_MS="soon" (expected an integer from 0 to 4294967295); using 5000'],
                 r.console.grep(/POLYTEL_EXIT_TIMEOUT_MS/)
    assert_equal "1500", run_ok(code: 'require "polytel"; p Polytel.exit_timeout_ms',
                                env: { "POLYTEL_EXIT_TIMEOUT_MS" => "1500" }).stdout.strip
  end

  # Nothing listens on the endpoint: shutdown gives up within its bound and says so. A hang check
  # (the worker must exit), not a timing assertion.
  def test_shutdown_with_no_receiver_is_bounded
    r = run_ok("no_receiver.rb", env: export_env(new_service("dead"),
                                                 "OTEL_EXPORTER_OTLP_ENDPOINT" => "http://127.0.0.1:9"),
                                 args: %w[explicit 1000], hang_limit: 60)
    j = r.json
    assert_equal false, j["shutdown_ok"]
    assert_equal "none", j["phase"]
    s = j["stats"]
    assert_equal s["recorded"], s["exported"] + s["dropped"] + s["unconfirmed"] + s["pending"]
    assert_equal 0, s["unconfirmed"] # nothing listens: nothing was ever sent
    %w[dropped_series dropped_depth metric_saturated dropped_rejected].each { |k| assert_equal 0, s.fetch(k) }
    assert_equal s["dropped"], %w[dropped_buffer_full dropped_invalid dropped_depth dropped_export dropped_rejected]
      .sum { |k| s[k] }
    assert_equal 0, s["exported"]
  end

  # A hang check: with a 10-minute flush and shutdown against a dead endpoint, only the unblock
  # function lets this worker finish.
  def test_flush_and_shutdown_release_the_gvl_and_can_be_interrupted
    j = run_ok("interrupt.rb", env: export_env(new_service("intr"), "OTEL_EXPORTER_OTLP_ENDPOINT" => "http://127.0.0.1:9",
                                                                    "POLYTEL_EXIT_TIMEOUT_MS" => "200"),
                               hang_limit: 60).json
    assert_equal({ "flush_interrupted" => "stop waiting", "shutdown_interrupted" => true, "ticks_while_waiting" => 20 }, j)
  end

  def test_a_trap_that_does_not_raise_only_resumes_the_wait
    receiver.faults([{ "status" => 200, "delay_ms" => 1000, "count" => 50 }])
    svc = new_service("trap")
    j = run_ok("trap.rb", env: export_env(svc), hang_limit: 60).json
    assert_equal({ "flush" => true, "shutdown" => true, "traps" => 2 }, j)
    view = receiver.for_service(svc) { |v| v["logs"].size >= 2 }
    assert_equal ["slow delivery 1", "slow delivery 2"], bodies(view["logs"]).sort
  ensure
    receiver.faults([])
  end

  def test_stalled_collector_at_exit_is_bounded
    stalled = -> { receiver.received["requests"].count { |q| q["fault"] == "stall" } }
    before = stalled.call
    receiver.faults([{ "mode" => "stall", "count" => 1000 }])
    r = run_ok("no_receiver.rb", env: export_env(new_service("stall"), "POLYTEL_EXIT_TIMEOUT_MS" => "1000"),
                                 args: %w[at_exit], hang_limit: 60)
    assert_nil r.json["shutdown_ok"], "the worker leaves shutdown to its at_exit hook"
    assert_operator stalled.call, :>, before, "the worker's export requests were not the stalled ones"
  ensure
    receiver.faults([])
  end
end
