# test_helper.rb — shared by the Ruby suite: the installed gem, the real receiver out of process, worker runs.
require "minitest/autorun"
require "json"
require "net/http"
require "rbconfig"
require "securerandom"
require "tmpdir"

module PolytelTest
  RUBY_DIR = File.expand_path("..", __dir__)
  REPO = File.expand_path("../../..", __dir__)
  WORKERS = File.join(__dir__, "workers")
  PYTHON = ENV.fetch("POLYTEL_PYTHON", File.join(REPO, ".venv", "bin", "python"))
  # A worker that has not exited by then is hung: the test fails and names it (never a perf bound).
  HANG_LIMIT_S = Integer(ENV.fetch("POLYTEL_TEST_HANG_LIMIT_S", "120"))

  def self.monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # tests/support/otlp_receiver.py, out of process, one for the whole run (each test filters by
  # its own service.name), driven through its /_control endpoints.
  class Receiver
    attr_reader :endpoint, :port

    def self.instance
      @instance ||= new.tap(&:start)
    end

    def start
      @dir = Dir.mktmpdir("polytel-rb-receiver")
      port_file = File.join(@dir, "port")
      @pid = Process.spawn(PYTHON, File.join(REPO, "tests", "support", "otlp_receiver.py"), "--port", "0",
                           "--port-file", port_file, out: File::NULL, err: File.join(@dir, "receiver.log"))
      deadline = PolytelTest.monotonic + 60
      until File.exist?(port_file)
        if Process.waitpid(@pid, Process::WNOHANG)
          raise "test receiver exited at start: #{File.read(File.join(@dir, "receiver.log"))}"
        end
        raise "test receiver did not start within 60 s" if PolytelTest.monotonic > deadline
        sleep 0.05
      end
      @port = Integer(File.read(port_file).strip)
      @endpoint = "http://127.0.0.1:#{@port}"
      Minitest.after_run { stop }
      self
    end

    def received
      JSON.parse(request(Net::HTTP::Get.new("/_control/received")))
    end

    def faults(list)
      req = Net::HTTP::Post.new("/_control/faults", "Content-Type" => "application/json")
      req.body = JSON.dump(list)
      request(req)
    end

    def stop
      return unless @pid
      begin
        request(Net::HTTP::Post.new("/_control/stop"))
      rescue StandardError
        nil
      end
      deadline = PolytelTest.monotonic + 10
      until Process.waitpid(@pid, Process::WNOHANG)
        if PolytelTest.monotonic > deadline
          Process.kill(:KILL, @pid)
          Process.waitpid(@pid)
          break
        end
        sleep 0.05
      end
      @pid = nil
    end

    # Items of one service, after polling until the block is satisfied (or 20 s, then the last view:
    # the assertions that follow say what is missing).
    def for_service(service, timeout: 20)
      deadline = PolytelTest.monotonic + timeout
      loop do
        got = received
        view = %w[spans logs metrics].to_h { |k| [k, got[k].select { |i| i["service"] == service }] }
        view["errors"] = got["errors"] || []
        return view if !block_given? || yield(view) || PolytelTest.monotonic > deadline
        sleep 0.1
      end
    end

    private

    def request(req)
      Net::HTTP.start("127.0.0.1", @port, open_timeout: 5, read_timeout: 30) do |http|
        res = http.request(req)
        raise "receiver #{req.path}: HTTP #{res.code}" unless res.is_a?(Net::HTTPSuccess)
        res.body
      end
    end
  end

  Result = Struct.new(:stdout, :stderr, :status, :elapsed, keyword_init: true) do
    # The worker prints one JSON object as its last stdout line.
    def json
      line = stdout.lines.reverse.find { |l| l.start_with?("{") } or raise "no JSON line in stdout:\n#{stdout}\n#{stderr}"
      JSON.parse(line)
    end

    # Console lines without their timestamp: "INFO polytel: deferring ...".
    def console
      stderr.lines.map(&:chomp).grep(/\A\d{4}-\d\d-\d\dT\S+ /).map { |l| l.sub(/\A\S+ /, "") }
    end

    def success? = status.success?
  end

  # Telemetry settings that must not leak in from the developer's shell.
  CLEAN_ENV = ENV.keys.grep(/\A(OTEL_|POLYTEL_|TELEMETRY_ENABLED\z|NO_COLOR\z|FORCE_COLOR\z)/).to_h { |k| [k, nil] }

  def receiver = Receiver.instance

  def new_service(tag) = "rb-#{tag}-#{SecureRandom.hex(4)}"

  # Runs test/workers/<script> (or Ruby code given as code:) with the installed gem and the given
  # environment on top of a clean one. Fails the test if it hangs.
  def run_worker(script = nil, env: {}, args: [], code: nil, hang_limit: HANG_LIMIT_S)
    argv = code ? [RbConfig.ruby, "-e", code, "--", *args] : [RbConfig.ruby, File.join(WORKERS, script), *args]
    full_env = CLEAN_ENV.merge("RUBYOPT" => nil, "RUBYLIB" => nil).merge(env)
    out_r, out_w = IO.pipe
    err_r, err_w = IO.pipe
    t0 = PolytelTest.monotonic
    pid = Process.spawn(full_env, *argv, out: out_w, err: err_w, in: File::NULL, pgroup: true)
    out_w.close
    err_w.close
    readers = [Thread.new { out_r.read }, Thread.new { err_r.read }]
    status = nil
    until (status = Process.waitpid2(pid, Process::WNOHANG)&.last)
      if PolytelTest.monotonic - t0 > hang_limit
        Process.kill(:KILL, -pid)
        Process.waitpid(pid)
        flunk "worker #{script || "-e"} hung: still running after #{hang_limit} s\n#{readers[1].value}"
      end
      sleep 0.02
    end
    elapsed = PolytelTest.monotonic - t0
    Result.new(stdout: readers[0].value, stderr: readers[1].value, status: status, elapsed: elapsed)
  ensure
    [out_r, err_r].each { |io| io&.close unless io&.closed? }
  end

  # A worker that must exit 0: its stderr is in the failure message.
  def run_ok(script = nil, **kw)
    r = run_worker(script, **kw)
    assert r.success?, "worker #{script || "-e"} failed (#{r.status.inspect})\n--- stdout\n#{r.stdout}\n--- stderr\n#{r.stderr}"
    r
  end

  # The environment of a worker exporting to the receiver under `service`.
  def export_env(service, enabled: "true", **extra)
    env = { "OTEL_EXPORTER_OTLP_ENDPOINT" => receiver.endpoint, "OTEL_SERVICE_NAME" => service,
            "OTEL_BSP_SCHEDULE_DELAY" => "100", "OTEL_BLRP_SCHEDULE_DELAY" => "100" }
    env["TELEMETRY_ENABLED"] = enabled unless enabled.nil?
    env.merge(extra.transform_keys(&:to_s))
  end

  def bodies(items) = items.map { |l| l["body"] }

  def assert_no_receiver_errors(view)
    assert_empty view["errors"], "the receiver refused requests: #{view["errors"].inspect}"
  end
end

class Minitest::Test
  include PolytelTest
end
