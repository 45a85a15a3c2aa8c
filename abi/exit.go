package abi

// Task exit codes. They follow Stonebranch ue-prefect 1.0 (0, 1, 20, 40) and
// add the shell convention 128+n for a run ended by signal n.
const (
	// ExitSuccess: the flow run was launched (and, when waiting, ended
	// COMPLETED), or a listing succeeded.
	ExitSuccess = 0
	// ExitFailed: the flow run ended FAILED, CRASHED or CANCELLED, or the
	// task could not be carried out (server unreachable past the retry and
	// outage budgets, an invalid response, a plugin fault).
	ExitFailed = 1
	// ExitDataValidation: an input field is invalid, names something that
	// does not exist or is ambiguous, or the server rejected the request
	// because of its content (400, 401, 403, 404, 409, 422).
	ExitDataValidation = 20
	// ExitPollingTimeout: the Max Number of Polls was reached before the flow
	// run ended. The flow run is left alone.
	ExitPollingTimeout = 40
	// ExitStartDeadline: Start Deadline (sec) passed after the flow run's
	// scheduled start and the run had not reached RUNNING (or ended): no
	// worker picked it up. The run is left as it is, or cancelled when
	// Cancel Flow Run at Start Deadline is set. Not a 1.0 code: 1.0 had no
	// start deadline.
	ExitStartDeadline = 41
	// ExitInterruptedSIGINT: the wait was ended by SIGINT (128+2).
	ExitInterruptedSIGINT = 130
	// ExitInterruptedSIGTERM: the wait was ended by SIGTERM (128+15).
	ExitInterruptedSIGTERM = 143
)

// Status description prefixes, as ue-prefect 1.0 words them.
const (
	StatusSuccess             = "Task executed successfully."
	StatusFailedPrefix        = "Execution Failed: "
	StatusValidationPrefix    = "Data Validation Error: "
	StatusPollingTimeout      = "Polling Timeout: maximum polling timeout reached."
	StatusInterruptedPrefix   = "Interrupted: "
	StatusStartDeadlinePrefix = "Start Deadline: "
)

// StatusDescription returns the status description for an exit code and a
// message, in the 1.0 wording: "Execution Failed: <message>" and so on. The
// message is ignored for ExitSuccess and ExitPollingTimeout, whose wording is
// fixed.
func StatusDescription(exitCode int, message string) string {
	switch exitCode {
	case ExitSuccess:
		return StatusSuccess
	case ExitDataValidation:
		return StatusValidationPrefix + message
	case ExitPollingTimeout:
		return StatusPollingTimeout
	case ExitInterruptedSIGINT, ExitInterruptedSIGTERM:
		return StatusInterruptedPrefix + message
	case ExitStartDeadline:
		return StatusStartDeadlinePrefix + message
	default:
		return StatusFailedPrefix + message
	}
}
