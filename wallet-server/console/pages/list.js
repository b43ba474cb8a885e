// What the merchants and citizens pages share: a search by prefix, a table a page at a time
// (the API's cursor), and a short form asking the reason for a suspension or a lock.

import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy} from '../form.js';
import {t} from '../i18n.js';

/** Rows a page. */
const PAGE_LIMIT = 50;

/**
 * A searchable, paged table of `path`'s items. `row(item, refresh, actions)` gives an item's
 * cells; `actions` is the area where a row's action asks for more or reports. Resolves once the
 * first page is shown, with {element, refresh(notice?)}.
 */
export async function searchList({path, label, hint, caption, headers, row, context}) {
  const search = field({name: 'q', label, hint, type: 'search', props: {autocomplete: 'off', maxlength: '64'}});
  const submit = h('button', {type: 'submit'}, t('list.search'));
  const form = h('form', {class: 'search', role: 'search'}, search.row, submit);
  const actions = h('div', {class: 'row-actions'});
  const results = h('div');
  const more = h('div');
  const notice = h('div', {class: 'form-message'});
  let query = '';
  const cursors = [];

  async function load(cursor) {
    const page = await api.request('GET', path, {query: {q: query, limit: PAGE_LIMIT, cursor}});
    if (!context.alive()) return;
    const rows = page.items.map((item) => row(item, refresh, actions));
    replace(results, page.items.length
      ? table(caption, headers, rows)
      : h('p', null, t('list.none')));
    const previous = cursors.length > 0;
    replace(more,
      previous ? h('button', {type: 'button', on: {click: () => { cursors.pop(); load(cursors[cursors.length - 1]); }}}, t('list.previous')) : null,
      page.next_cursor ? h('button', {type: 'button', on: {click: () => { cursors.push(page.next_cursor); load(page.next_cursor); }}}, t('list.next')) : null);
  }

  async function refresh(text) {
    replace(actions);
    await load(cursors[cursors.length - 1]);
    showMessage(notice, text ? {kind: 'success', text} : null);
    if (text) context.announce(text);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    query = search.input.value.trim();
    cursors.length = 0;
    clearErrors([search], notice);
    busy(submit, async () => {
      try {
        await load(undefined);
      } catch (error) {
        showError([search], notice, error);
      }
    });
  });
  await load(undefined);
  return {element: h('section', {class: 'list'}, form, notice, actions, results, more), refresh};
}

/** Asks for a reason (1-200 characters) in `area`, then sends it; the list refreshes after. */
export function reasonForm(area, {title, explain, confirm, send, done, refresh}) {
  const reason = field({name: 'reason', label: t('list.reason'), hint: t('list.reason_hint'), props: {maxlength: '200', autocomplete: 'off'}});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, confirm);
  const cancel = h('button', {type: 'button', class: 'secondary', on: {click: () => replace(area)}}, t('list.cancel'));
  const heading = h('h2', {tabindex: '-1'}, title);
  const form = h('form', {novalidate: true, class: 'reason'}, heading, h('p', null, explain), reason.row, submit, ' ', cancel, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([reason], message);
    busy(submit, async () => {
      try {
        await send(reason.input.value.trim());
        await refresh(done);
      } catch (error) {
        showError([reason], message, error);
      }
    });
  });
  replace(area, form);
  reason.input.focus();
}
