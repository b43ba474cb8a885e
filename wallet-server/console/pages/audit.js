// The audit log: every admin action, newest first, a page at a time.

import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {time} from '../format.js';
import {t, has} from '../i18n.js';

const PAGE_LIMIT = 50;

export async function render(container, context) {
  const rows = h('div');
  const more = h('div');
  const cursors = [];
  async function load(cursor) {
    const page = await api.request('GET', '/v1/admin/audit-log', {query: {limit: PAGE_LIMIT, cursor}});
    if (!context.alive()) return;
    replace(rows, page.items.length
      ? table(t('audit.table'), ['at', 'who', 'action', 'detail', 'key'].map((name) => t('audit.' + name)),
        page.items.map((row) => [
          time(row.at),
          row.via === 'cli' ? t('audit.cli') : row.login ?? row.principal_id ?? '—',
          has('audit.action_' + row.action) ? t('audit.action_' + row.action) : row.action,
          h('code', {class: 'detail'}, JSON.stringify(row.detail)),
          row.idempotency_key ?? '—',
        ]))
      : h('p', null, t('audit.none')));
    replace(more,
      cursors.length ? h('button', {type: 'button', on: {click: () => { cursors.pop(); load(cursors[cursors.length - 1]); }}}, t('list.previous')) : null,
      page.next_cursor ? h('button', {type: 'button', on: {click: () => { cursors.push(page.next_cursor); load(page.next_cursor); }}}, t('list.older')) : null);
  }
  replace(container, h('p', null, t('audit.intro')), rows, more);
  await load(undefined);
}
