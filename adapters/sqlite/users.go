package sqlite

import (
	"context"
	"fmt"
	"strings"

	"healthrecord/domain"
	"healthrecord/internal/username"
	"healthrecord/ports"
)

// users implements ports.Users.
type users struct{ in repos }

const userCols = "id, username, email, role, approved, active, password_hash, created_at"

func scanUser(sc scanner) (domain.User, error) {
	var u domain.User
	var role string
	var createdAt int64
	err := sc.Scan(&u.ID, &u.Username, &u.Email, &role, &u.Approved, &u.Active, &u.PasswordHash, &createdAt)
	u.Role, u.CreatedAt = domain.Role(role), fromNanos(createdAt)
	return u, err
}

func (r users) Create(ctx context.Context, u *domain.User) error {
	id, err := insertedID(r.in.writes().ExecContext(ctx,
		`INSERT INTO users (username, username_key, email, role, approved, active, password_hash, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Username, username.Key(u.Username), u.Email, string(u.Role), boolInt(u.Approved), boolInt(u.Active), u.PasswordHash, toNanos(u.CreatedAt)))
	if isUnique(err) {
		return domain.UsernameTaken()
	} else if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	u.ID = id
	return nil
}

func (r users) ByID(ctx context.Context, id int64) (domain.User, error) {
	u, err := scanUser(r.in.reads().QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return domain.User{}, fmt.Errorf("sqlite: user %d: %w", id, notFoundIf(err))
	}
	return u, nil
}

// ByUsername falls back to the exact name for an old account whose key
// could not be set because it collides with another's (see backfillKeys).
func (r users) ByUsername(ctx context.Context, name string) (domain.User, error) {
	u, err := scanUser(r.in.reads().QueryRowContext(ctx,
		`SELECT `+userCols+` FROM users WHERE username_key = ?
		 UNION ALL SELECT `+userCols+` FROM users WHERE username_key IS NULL AND username = ?
		 LIMIT 1`, username.Key(name), name))
	if err != nil {
		return domain.User{}, fmt.Errorf("sqlite: user by name: %w", notFoundIf(err))
	}
	return u, nil
}

func (r users) Update(ctx context.Context, u domain.User) error {
	err := mustChange(r.in.writes().ExecContext(ctx,
		`UPDATE users SET email = ?, approved = ?, active = ?, password_hash = ? WHERE id = ?`,
		u.Email, boolInt(u.Approved), boolInt(u.Active), u.PasswordHash, u.ID))
	if err != nil {
		return fmt.Errorf("sqlite: update user %d: %w", u.ID, err)
	}
	return nil
}

func (r users) List(ctx context.Context, f ports.UserFilter, p domain.Page) ([]domain.User, error) {
	var w where
	if f.Role != nil {
		w.add("role = ?", string(*f.Role))
	}
	if f.Approved != nil {
		w.add("approved = ?", boolInt(*f.Approved))
	}
	if f.Active != nil {
		w.add("active = ?", boolInt(*f.Active))
	}
	if f.Search != "" {
		w.add(`username LIKE ? ESCAPE '\'`, "%"+likeEscaper.Replace(f.Search)+"%")
	}
	w.after(p, "created_at", "id")
	out, err := queryAll(ctx, r.in.reads(), scanUser,
		`SELECT `+userCols+` FROM users`+w.String()+` ORDER BY created_at DESC, id DESC LIMIT ?`,
		append(w.args, limit(p))...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return out, nil
}

// backfillKeys sets username_key where it is missing (accounts created
// before the column existed). An old account whose key is already taken
// by another keeps no key: both still sign in by their exact names, and
// the returned names say which ones an operator should rename.
func backfillKeys(ctx context.Context, q sqlRunner) ([]string, error) {
	type row struct {
		id   int64
		name string
	}
	todo, err := queryAll(ctx, q, func(sc scanner) (row, error) {
		var r row
		err := sc.Scan(&r.id, &r.name)
		return r, err
	}, `SELECT id, username FROM users WHERE username_key IS NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: username keys: %w", err)
	}
	var clashes []string
	for _, r := range todo {
		_, err := q.ExecContext(ctx, `UPDATE users SET username_key = ? WHERE id = ?`, username.Key(r.name), r.id)
		if isUnique(err) {
			clashes = append(clashes, r.name)
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: username key of user %d: %w", r.id, err)
		}
	}
	return clashes, nil
}

// likeEscaper makes a search term match literally inside a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
