# report_job.rb — the demo's Sidekiq worker (sidekiq -r ./report_job.rb): require "polytel/sidekiq" and one job.
require "polytel/sidekiq"

# Pushed from Python (examples/fleet/tasks.py) with a traceparent: its consumer span continues that trace.
class ReportJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(report_id)
    Polytel.info("storing report", report_id: report_id, jid: jid)
    Polytel.counter_add("demo.reports.stored", 1)
  end
end
