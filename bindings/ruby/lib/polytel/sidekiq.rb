# polytel/sidekiq.rb — Sidekiq (6.x) integration: traceparent in the job hash, producer/consumer spans, bootstrap in the server.
#
#   require "polytel/sidekiq"   # in the app Sidekiq loads (sidekiq -r ./app.rb) and in the processes that enqueue
#
# Client middleware (every process): each push runs in a `producer` span and carries the W3C
# `traceparent` (and `tracestate`) as top-level keys of the job hash, which Sidekiq stores as JSON, so
# any producer that writes the key (another language included) continues its trace into the worker.
# Server middleware (the Sidekiq process): each job runs in a `consumer` span, the child of the job's
# traceparent, with the job's class, jid and queue; an exception the job raises is recorded on it (status
# ERROR, an `exception` event) and goes on to Sidekiq's retry logic unchanged. The server bootstraps
# polytel (phase 2) on Sidekiq's :startup event, once Sidekiq's own threads are about to start.
require "polytel"
require "sidekiq"

module Polytel
  module Sidekiq
    # The job hash keys the trace context travels in (W3C names, as any carrier uses them).
    KEYS = %w[traceparent tracestate].freeze

    class << self
      # Keywords for Polytel.bootstrap_worker at :startup (the environment gives the rest).
      attr_accessor :bootstrap_options

      # What bootstrap_worker returned in this server (nil before :startup, or in a client process).
      attr_reader :bootstrap_result

      # The span names: "<job class> publish" / "<job class> process" (the OpenTelemetry messaging
      # conventions' "<destination> <operation>", with the job class as the destination, as
      # opentelemetry-instrumentation-sidekiq names them with span_naming: :job_class).
      def job_class(job)
        (job["wrapped"] || job["class"]).to_s
      end

      # The semantic-convention attributes of a job (messaging.*), the same on both sides.
      def attributes(job, queue, operation)
        attrs = {
          "messaging.system" => "sidekiq",
          "messaging.operation" => operation,
          "messaging.destination.name" => queue.to_s,
          "messaging.sidekiq.job_class" => job_class(job)
        }
        attrs["messaging.message.id"] = job["jid"] if job["jid"]
        attrs["messaging.sidekiq.retry_count"] = job["retry_count"] if job["retry_count"].is_a?(Integer)
        attrs
      end

      def bootstrap
        @bootstrap_result = Polytel.bootstrap_worker(**(bootstrap_options || {}))
      end

      def install_client(chain)
        chain.add(ClientMiddleware)
      end

      def install_server(config)
        config.server_middleware { |chain| chain.add(ServerMiddleware) }
        config.client_middleware { |chain| install_client(chain) } # jobs that enqueue jobs
        config.on(:startup) { Polytel::Sidekiq.bootstrap }
      end
    end

    # Sidekiq::Client#push (perform_async, perform_in, Sidekiq::Client.push): a producer span around the
    # push, its traceparent in the job. A job that already carries one (re-enqueued, or written by a
    # producer that set it) keeps it: the trace is the one it started in.
    class ClientMiddleware
      def call(_worker_class, job, queue, _redis_pool = nil)
        return yield if job.key?("traceparent")
        name = "#{Polytel::Sidekiq.job_class(job)} publish"
        Polytel.span(name, kind: :producer, attributes: Polytel::Sidekiq.attributes(job, queue, "publish")) do
          Polytel.inject(job)
          yield
        end
      end
    end

    # A job in the worker: a consumer span, the child of the job's traceparent (a new trace without one).
    class ServerMiddleware
      def call(_worker, job, queue)
        parent = Polytel.extract(job)
        name = "#{Polytel::Sidekiq.job_class(job)} process"
        Polytel.span(name, parent: parent, kind: :consumer,
                           attributes: Polytel::Sidekiq.attributes(job, queue, "process")) do
          yield
        end
      end
    end
  end
end

# configure_server runs its block only in the Sidekiq process, configure_client only elsewhere.
Sidekiq.configure_server { |config| Polytel::Sidekiq.install_server(config) }
Sidekiq.configure_client { |config| config.client_middleware { |chain| Polytel::Sidekiq.install_client(chain) } }
