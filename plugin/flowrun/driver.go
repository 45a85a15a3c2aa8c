package flowrun

import "github.com/ue-prefect/ue-prefect/abi"

// Host carries out the machine's commands: one method per host function
// of package abi. Inside the plugin it calls those host functions; tests
// supply a scripted fake, and package host a Go implementation.
type Host interface {
	HTTP(abi.HTTPRequest) abi.HTTPResponse
	Sleep(abi.SleepRequest) abi.SleepResponse
	Credential(abi.CredentialRequest) abi.CredentialResponse
	Log(abi.LogRecord)
	Progress(abi.Progress)
}

// Run drives a machine from in to its end through eff and returns the
// outcome.
func Run(eff Host, in abi.RunInput) abi.RunOutput {
	m, cmds := Start(in)
	for {
		var ev abi.Event
		for _, c := range cmds {
			switch c.Kind {
			case abi.CommandLog:
				eff.Log(*c.Log)
			case abi.CommandProgress:
				eff.Progress(*c.Progress)
			case abi.CommandFinish:
				return *c.Finish
			case abi.CommandHTTP:
				r := eff.HTTP(*c.HTTP)
				ev = abi.Event{Kind: abi.EventHTTP, HTTP: &r}
			case abi.CommandSleep:
				r := eff.Sleep(*c.Sleep)
				ev = abi.Event{Kind: abi.EventWoke, Woke: &r}
			case abi.CommandCredential:
				r := eff.Credential(abi.CredentialRequest{})
				ev = abi.Event{Kind: abi.EventCredential, Credential: &r}
			}
		}
		cmds = m.Step(ev)
	}
}
