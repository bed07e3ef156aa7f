// Live calls as the console knows them, fed by events and by GET /api/calls/live snapshots.
import { api } from './api.js';

export const LIVE_STATES = new Set(['ringing', 'answered']);
const KEEP_FINISHED_MS = 10 * 60 * 1000;

export class CallStore {
  constructor() {
    this.entries = new Map(); // call id -> {id, call, match, ...console-side state}
    this.listeners = new Set();
    this.loading = false;
    this.pending = [];
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify(entry, type) {
    for (const fn of this.listeners) fn(entry, type);
  }

  all() {
    return [...this.entries.values()];
  }

  get(id) {
    return this.entries.get(id);
  }

  apply(event) {
    if (this.loading) {
      this.pending.push(event); // applied after the snapshot, in order
      return;
    }
    this.applyNow(event);
  }

  applyNow(event) {
    if (!event.type || !event.type.startsWith('call.') || !event.data || !event.data.call) return;
    const data = event.data;
    const entry = this.upsert(data.call, data.match);
    entry.lastType = event.type;
    entry.types.push(event.type); // what this card went through (tests, debugging)
    if (event.type === 'call.transferred' && data.transfer) entry.lastTransfer = data.transfer;
    this.notify(entry, event.type);
  }

  upsert(call, match) {
    let entry = this.entries.get(call.id);
    if (!entry) {
      entry = { id: call.id, firstSeen: Date.now(), ui: {}, types: [] };
      this.entries.set(call.id, entry);
    }
    entry.call = call;
    if (match) entry.match = match;
    entry.updated = Date.now();
    if (!LIVE_STATES.has(call.state) && !entry.finishedAt) entry.finishedAt = Date.now();
    return entry;
  }

  // Reload the live calls; a call we show as live that is gone from the server ended while
  // we were away: fetch its final row, or drop it.
  async reload() {
    this.loading = true;
    try {
      let live;
      try {
        live = await api('GET', '/api/calls/live');
      } catch (err) {
        // No answer is no news: keep the cards as they are rather than settle them all.
        console.warn('live calls', err);
        return;
      }
      const present = new Set();
      for (const item of live || []) {
        present.add(item.call.id);
        this.notify(this.upsert(item.call, item.match), 'snapshot');
      }
      for (const entry of this.all()) {
        if (present.has(entry.id) || !LIVE_STATES.has(entry.call.state)) continue;
        await this.settle(entry);
      }
    } finally {
      const queued = this.pending;
      this.pending = [];
      this.loading = false;
      for (const event of queued) this.applyNow(event);
    }
  }

  async settle(entry) {
    try {
      const row = await api('GET', `/api/calls/${encodeURIComponent(entry.id)}`);
      // The log says answered/missed/failed; a finished answered call is "ended" live. The
      // call is not live any more, so a log row still being written ("ringing"/"answered"
      // before its final write) must not bring a ringing card back.
      const state = row.state === 'missed' || row.state === 'failed' ? row.state : 'ended';
      const call = { ...entry.call, ...row, state, ringing: [] };
      this.notify(this.upsert(call, entry.match), 'settled');
    } catch {
      this.remove(entry.id);
    }
  }

  remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    entry.removed = true;
    this.notify(entry, 'removed');
  }

  prune() {
    const now = Date.now();
    for (const entry of this.all()) {
      if (entry.finishedAt && now - entry.finishedAt > KEEP_FINISHED_MS) this.remove(entry.id);
    }
  }
}
