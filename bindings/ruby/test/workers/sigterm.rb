# sigterm.rb — records, then SIGTERM (what Puma, Sidekiq and Kubernetes send): at_exit still delivers.
require "polytel"

Polytel.bootstrap_worker
500.times { |i| Polytel.info("before term #{i}") }
Polytel.span("terminated") { Process.kill(:TERM, Process.pid); sleep 30 }
