# app.rb — the Sidekiq application of the Sidekiq suite (sidekiq -r ./app.rb): polytel/sidekiq and one job class.
require "polytel/sidekiq"

module PolytelTest
  class EchoJob
    include Sidekiq::Worker
    sidekiq_options retry: false

    # A log line inside the job (it carries the consumer span's ids) and a raise on demand.
    def perform(n, producer, fail = false)
      Polytel.info("echo job", n: n, producer: producer, jid: jid)
      raise ArgumentError, "job #{n} from #{producer} asked to fail" if fail
      Polytel.counter_add("echo.jobs", 1, producer: producer)
    end
  end
end
