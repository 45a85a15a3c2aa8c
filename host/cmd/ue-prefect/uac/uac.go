// Package uac carries the Stonebranch UAC Universal Template (type Script) that
// wraps the ue-prefect binary: the template export and its script body, embedded
// so that the binary (or an installer) can print or write them.
//
// See README.md for how to import the template and how its fields map to the
// environment variables ue-prefect reads.
package uac

import _ "embed"

// TemplateJSON is Prefect.universaltemplate.json, importable with the
// Controller's Create Universal Template web service.
//
//go:embed Prefect.universaltemplate.json
var TemplateJSON []byte

// Script is ue-prefect-task.sh, the template's Linux/Unix script body; it equals
// the "script" value inside TemplateJSON.
//
//go:embed ue-prefect-task.sh
var Script string

// TemplateFileName is the conventional file name of the template export.
const TemplateFileName = "Prefect.universaltemplate.json"
