// Preemption signals (DESIGN §7): SIGTERM and SIGUSR1 (Slurm `--signal`, `scancel --signal=USR1`) only set a
// flag; the training loop checks it after each step, every rank agrees to stop after the same step, a
// checkpoint is written and the process exits with kExitPreempted (85) so that a batch script requeues it.
#pragma once

namespace erlangshen::cli {

// Installs the handlers (idempotent). A second signal of the same kind does not kill the process either:
// the checkpoint in progress is finished first.
void install_stop_signal_handlers();
// True once SIGTERM or SIGUSR1 arrived.
bool stop_requested();
// The signal that arrived first (0 if none).
int stop_signal_number();

}  // namespace erlangshen::cli
