package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"healthrecord/domain"
	"healthrecord/internal/username"
	"healthrecord/ports"
)

// users implements ports.Users; usernames compare by username.Key, kept
// in a unique column.
type users struct{ s scope }

const userCols = "id, username, email, role, approved, active, password_hash, created_at"

func scanUser(row pgx.Row) (domain.User, error) {
	var u domain.User
	var role string
	var createdAt int64
	err := row.Scan(&u.ID, &u.Username, &u.Email, &role, &u.Approved, &u.Active, &u.PasswordHash, &createdAt)
	u.Role, u.CreatedAt = domain.Role(role), fromNanos(createdAt)
	return u, err
}

// Create reports a taken name without a failed statement (ON CONFLICT DO
// NOTHING), so the caller's transaction stays usable, as on SQLite.
func (r users) Create(ctx context.Context, u *domain.User) error {
	err := r.s.write(ctx, func(t *txn) error {
		return t.QueryRow(ctx,
			`INSERT INTO users (username, username_key, email, role, approved, active, password_hash, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id`,
			u.Username, username.Key(u.Username), u.Email, string(u.Role), u.Approved, u.Active, u.PasswordHash,
			toNanos(u.CreatedAt)).Scan(&u.ID)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.UsernameTaken()
	} else if err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	return nil
}

func (r users) ByID(ctx context.Context, id int64) (domain.User, error) {
	u, err := one(ctx, r.s.reader(), scanUser, `SELECT `+userCols+` FROM users WHERE id = $1`, id)
	if err != nil {
		return domain.User{}, fmt.Errorf("postgres: user %d: %w", id, err)
	}
	return u, nil
}

func (r users) ByUsername(ctx context.Context, name string) (domain.User, error) {
	u, err := one(ctx, r.s.reader(), scanUser, `SELECT `+userCols+` FROM users WHERE username_key = $1`, username.Key(name))
	if err != nil {
		return domain.User{}, fmt.Errorf("postgres: user by name: %w", err)
	}
	return u, nil
}

func (r users) Update(ctx context.Context, u domain.User) error {
	err := r.s.write(ctx, func(t *txn) error {
		return mustChange(t.Exec(ctx,
			`UPDATE users SET email = $1, approved = $2, active = $3, password_hash = $4 WHERE id = $5`,
			u.Email, u.Approved, u.Active, u.PasswordHash, u.ID))
	})
	if err != nil {
		return fmt.Errorf("postgres: update user %d: %w", u.ID, err)
	}
	return nil
}

// asciiLowerSQL lowers ASCII letters only, as SQLite's LIKE compares them
// (lower() would fold other letters too, by the collation's rules).
const asciiLowerSQL = `translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`

func (r users) List(ctx context.Context, f ports.UserFilter, p domain.Page) ([]domain.User, error) {
	var w where
	if f.Role != nil {
		w.add("role = ?", string(*f.Role))
	}
	if f.Approved != nil {
		w.add("approved = ?", *f.Approved)
	}
	if f.Active != nil {
		w.add("active = ?", *f.Active)
	}
	if f.Search != "" {
		w.add(asciiLowerSQL+` LIKE ? ESCAPE '\'`, "%"+likeEscaper.Replace(asciiLower(f.Search))+"%")
	}
	w.after(p, "created_at", "id")
	out, err := collect(ctx, r.s.reader(), scanUser,
		`SELECT `+userCols+` FROM users`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT `+w.next(limit(p)),
		w.args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	return out, nil
}

// asciiLower lowers ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// likeEscaper makes a search term match literally inside a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
