// The merchant's settlements: for each closed date in a range, what it sold and refunded, the
// fee, what was carried in from a negative close, and the net the city pays; as a file too.

import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {field, messageArea, showError, clearErrors, busy, csvLink} from '../form.js';
import {won, addDays} from '../format.js';
import {t} from '../i18n.js';

/** Days shown back from today at first. */
const DAYS_SHOWN = 31;

export async function render(container, context) {
  // The merchant's today as the server counts it (the sales answer names it).
  const today = (await api.request('GET', '/v1/merchant/sales')).business_date;
  const range = {from: addDays(today, -(DAYS_SHOWN - 1)), to: today};
  const area = h('div');

  async function load() {
    const [lines, csv] = await Promise.all([
      api.request('GET', '/v1/merchant/settlements', {query: range}),
      api.request('GET', '/v1/merchant/settlements', {query: range, accept: 'text/csv'}),
    ]);
    if (!context.alive()) return;
    replace(area, lines.items.length
      ? [
        h('p', null, csvLink(csv, `settlements-${range.from}-${range.to}.csv`, t('payouts.download'), 'settlement-csv')),
        table(t('payouts.table', range),
          ['business_date', 'payments_amount', 'refunds_amount', 'fee', 'carried_in', 'net_payable'].map((name) => t('payouts.' + name)),
          lines.items.map((line) => [
            line.business_date,
            won(line.payments_amount),
            won(line.refunds_amount),
            won(line.fee),
            won(line.carried_in),
            h('span', {class: line.net_payable.startsWith('-') ? 'negative' : null}, won(line.net_payable)),
          ])),
      ]
      : h('p', null, t('payouts.none', range)));
  }

  const from = field({name: 'from', label: t('settlements.from'), type: 'date', value: range.from});
  const to = field({name: 'to', label: t('settlements.to'), type: 'date', value: range.to});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('settlements.show'));
  const form = h('form', {novalidate: true, class: 'inline'}, from.row, to.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([from, to], message);
    const previous = {...range};
    Object.assign(range, {from: from.input.value, to: to.input.value});
    busy(submit, async () => {
      try {
        await load();
      } catch (error) {
        Object.assign(range, previous);
        showError([from, to], message, error);
      }
    });
  });
  replace(container, h('p', null, t('payouts.intro')), form, area);
  await load();
}
