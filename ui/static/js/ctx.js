// What every page shares: the logged-in user, the user list, the live calls.
import { api } from './api.js';
import { CallStore } from './calls.js';

export const ctx = {
  me: null,
  users: [],
  usersById: new Map(),
  store: new CallStore(),
  socket: null,
};

export async function loadUsers() {
  try {
    ctx.users = await api('GET', '/api/users');
  } catch {
    ctx.users = [];
  }
  ctx.usersById = new Map(ctx.users.map((u) => [u.id, u]));
  return ctx.users;
}

export function userName(id) {
  const user = ctx.usersById.get(id);
  return user ? user.name : '';
}
