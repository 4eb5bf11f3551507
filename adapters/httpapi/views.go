package httpapi

import (
	"healthrecord/domain"
)

// The response objects, field for field as the contract names them.
// Records and comments are appended by hand instead: see recordjson.go.

type userView struct {
	ID       int64       `json:"id"`
	Username string      `json:"username"`
	Email    string      `json:"email"`
	Role     domain.Role `json:"role"`
	Approved *bool       `json:"approved,omitempty"`
	IsActive *bool       `json:"is_active,omitempty"`
}

// toUser is the user object; approved is shown for doctors only, and
// is_active only to the admin.
func toUser(u domain.User, admin bool) userView {
	v := userView{ID: u.ID, Username: u.Username, Email: u.Email, Role: u.Role}
	if u.Role == domain.RoleDoctor {
		approved := u.Approved
		v.Approved = &approved
	}
	if admin {
		active := u.Active
		v.IsActive = &active
	}
	return v
}

// UserJSON is an account as the admin API shows it; the CLI's
// `users list --json` prints the same.
func UserJSON(u domain.User) any { return toUser(u, true) }

type doctorView struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

type notificationView struct {
	ID        int64   `json:"id"`
	Kind      string  `json:"kind"`
	Record    int64   `json:"record"`
	Patient   int64   `json:"patient"`
	CreatedAt string  `json:"created_at"`
	ReadAt    *string `json:"read_at"`
}

func toNotification(n domain.Notification) notificationView {
	return notificationView{ID: n.ID, Kind: n.Kind, Record: n.RecordID, Patient: n.PatientID,
		CreatedAt: timeJSON(n.CreatedAt), ReadAt: optTimeJSON(n.ReadAt)}
}

type auditView struct {
	ID         int64   `json:"id"`
	At         string  `json:"at"`
	Actor      *int64  `json:"actor"`
	ActorRole  *string `json:"actor_role"`
	Action     string  `json:"action"`
	Record     *int64  `json:"record"`
	Patient    *int64  `json:"patient"`
	Outcome    string  `json:"outcome"`
	RequestID  string  `json:"request_id"`
	RemoteAddr string  `json:"remote_addr"`
}

func toAudit(e domain.AuditEntry) auditView {
	// An event without an account (an unknown username, the command
	// line) has a null actor and role.
	var role *string
	if e.ActorRole != "" {
		r := string(e.ActorRole)
		role = &r
	}
	return auditView{ID: e.ID, At: timeJSON(e.At), Actor: optID(e.ActorID), ActorRole: role, Action: e.Action,
		Record: optID(e.RecordID), Patient: optID(e.PatientID), Outcome: e.Outcome,
		RequestID: e.RequestID, RemoteAddr: e.RemoteAddr}
}

type outboxView struct {
	ID            int64   `json:"id"`
	Kind          string  `json:"kind"`
	Record        int64   `json:"record"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	LastError     *string `json:"last_error"`
	NextAttemptAt string  `json:"next_attempt_at"`
	CreatedAt     string  `json:"created_at"`
	DeliveredAt   *string `json:"delivered_at"`
	// Deliveries is the event's progress per sink.
	Deliveries []deliveryView `json:"deliveries"`
}

type deliveryView struct {
	Sink          string  `json:"sink"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	LastError     *string `json:"last_error"`
	NextAttemptAt string  `json:"next_attempt_at"`
	DeliveredAt   *string `json:"delivered_at"`
}

// OutboxJSON is an outbox event as the admin API shows it; the CLI's
// `outbox list` prints the same.
func OutboxJSON(e domain.OutboxEvent) any { return toOutbox(e) }

func toOutbox(e domain.OutboxEvent) outboxView {
	v := outboxView{ID: e.ID, Kind: e.Kind, Record: e.RecordID, State: e.State, Attempts: e.Attempts,
		NextAttemptAt: timeJSON(e.NextAttemptAt), CreatedAt: timeJSON(e.CreatedAt), DeliveredAt: optTimeJSON(e.DeliveredAt)}
	v.LastError = optString(e.LastError)
	v.Deliveries = make([]deliveryView, 0, len(e.Deliveries))
	for _, d := range e.Deliveries {
		v.Deliveries = append(v.Deliveries, deliveryView{Sink: d.Sink, State: d.State, Attempts: d.Attempts,
			LastError: optString(d.LastError), NextAttemptAt: timeJSON(d.NextAttemptAt), DeliveredAt: optTimeJSON(d.DeliveredAt)})
	}
	return v
}

// optString is nil (null on the wire) for an empty string.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// mapList converts a list, never returning nil: an empty list is [] on
// the wire, not null.
func mapList[T, V any](items []T, f func(T) V) []V {
	out := make([]V, 0, len(items))
	for _, it := range items {
		out = append(out, f(it))
	}
	return out
}

type overviewView struct {
	Users          map[string]int64 `json:"users"`
	PendingDoctors int64            `json:"pending_doctors"`
	Outbox         map[string]int64 `json:"outbox"`
	AuditEntries   int64            `json:"audit_entries"`
	Version        string           `json:"version"`
	StartedAt      string           `json:"started_at"`
}

type auditCheckView struct {
	OK          bool   `json:"ok"`
	Entries     int64  `json:"entries"`
	FirstBroken *int64 `json:"first_broken"`
}
