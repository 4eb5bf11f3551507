// Package text makes the seeded and sent record and comment texts:
// cmd/hrbench's word lists and functions, so that bodies are of the size
// healthrecord's benchmark sends.
package text

import (
	"math/rand/v2"
	"strings"
	"time"
)

var (
	tests    = []string{"Blood test", "Lipid panel", "Chest X-ray", "ECG", "Thyroid panel", "Allergy test", "HbA1c", "Vitamin D", "Spirometry", "Skin check", "Eye exam", "Follow-up"}
	findings = []string{"Cholesterol 5.2 mmol/L.", "Blood pressure 128/82 mmHg.", "Resting heart rate 64 bpm.", "No acute findings.",
		"Mild seasonal rhinitis reported.", "Fasting glucose 5.4 mmol/L.", "TSH within range.", "Patient reports better sleep since last visit.",
		"Continue current medication at the same dose.", "Weight stable at 74 kg.", "Vitamin D slightly low; supplement advised.", "Peak flow 480 L/min."}
	advice = []string{"Within range; recheck in a year.", "Please book a follow-up in three months.", "Repeat the test after fasting.",
		"Discussed results by phone.", "No change needed.", "Refer to the dietitian.", "Start the supplement and retest in eight weeks."}
)

// Record is a record's title and content.
func Record(rng *rand.Rand) (title, content string) {
	title = tests[rng.IntN(len(tests))] + " " + time.Date(2020+rng.IntN(6), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	var c strings.Builder
	for n := 3 + rng.IntN(6); n > 0; n-- {
		c.WriteString(findings[rng.IntN(len(findings))])
		c.WriteByte(' ')
	}
	return title, strings.TrimSpace(c.String())
}

// Comment is a comment's text.
func Comment(rng *rand.Rand) string {
	return advice[rng.IntN(len(advice))] + " " + advice[rng.IntN(len(advice))]
}
