package app

import (
	"context"

	"healthrecord/domain"
	"healthrecord/ports"
)

// checkQuota refuses a write that adds added bytes to the patient's
// stored records and comments beyond the configured quota. It runs in the
// write's own transaction, so concurrent writes cannot both slip under.
// EQuota.
func (a *App) checkQuota(ctx context.Context, tx ports.Repos, patientID, added int64) error {
	if a.cfg.QuotaBytes <= 0 || added <= 0 {
		return nil // off, or the write frees room
	}
	used, err := tx.Records().StoredBytes(ctx, patientID)
	if err != nil {
		return err
	}
	if used+added > a.cfg.QuotaBytes {
		return domain.QuotaExceeded()
	}
	return nil
}

// recordBytes is what a record counts against its patient's quota.
func recordBytes(r domain.Record) int64 { return int64(len(r.Title) + len(r.Content)) }
