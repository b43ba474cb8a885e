// Settlement: close a business date, the dates closed in a range, and a date's lines with its
// file (the CSV the city's bank transfer is made from, byte for byte as the API serves it).

import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy, csvLink} from '../form.js';
import {won, count, time, businessDate, addDays} from '../format.js';
import {t, errorText} from '../i18n.js';

/** Days the list shows back from today at first. */
const DAYS_SHOWN = 31;

export async function render(container, context) {
  const status = await api.request('GET', '/v1/admin/status');
  const today = businessDate(status.now);
  const detail = h('section', {'aria-labelledby': 'settlement-detail', class: 'detail'});
  const listArea = h('div');
  const range = {from: addDays(today, -(DAYS_SHOWN - 1)), to: today};

  async function showList() {
    const closed = await api.request('GET', '/v1/admin/settlements', {query: range});
    if (!context.alive()) return;
    replace(listArea, closed.items.length
      ? table(t('settlements.table', range),
        ['business_date', 'merchants', 'total_fee', 'total_net_payable', 'closed_at', 'actions'].map((name) => t('settlements.' + name)),
        closed.items.map((item) => [
          item.business_date,
          count(item.merchants),
          won(item.total_fee),
          won(item.total_net_payable),
          time(item.closed_at),
          h('button', {type: 'button', on: {click: () => showDetail(item.business_date, detail)}},
            t('settlements.view'), h('span', {class: 'visually-hidden'}, ` ${item.business_date}`)),
        ]))
      : h('p', null, t('settlements.none', range)));
  }

  replace(container,
    closeForm(addDays(today, -1), today, async (date) => { await showList(); await showDetail(date, detail); }),
    h('section', {'aria-labelledby': 'settlements-closed'},
      h('h2', {id: 'settlements-closed'}, t('settlements.closed')),
      rangeForm(range, showList),
      listArea),
    detail);
  await showList();
}

function closeForm(yesterday, today, closed) {
  const date = field({name: 'business_date', label: t('settlements.date'), type: 'date', value: yesterday,
    hint: t('settlements.close_hint', {today}), props: {max: addDays(today, -1)}});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('settlements.close'));
  const form = h('form', {novalidate: true}, date.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([date], message);
    busy(submit, async () => {
      try {
        const answer = await api.request('POST', '/v1/admin/settlements', {body: {business_date: date.input.value}, key: api.newKey()});
        showMessage(message, {kind: 'success', text: t('settlements.closed_one', {
          date: answer.business_date, merchants: count(answer.merchants), total: won(answer.total_net_payable)})});
        await closed(answer.business_date);
      } catch (error) {
        showError([date], message, error);
      }
    });
  });
  return h('section', {'aria-labelledby': 'settlement-close'}, h('h2', {id: 'settlement-close'}, t('settlements.close_title')), form);
}

function rangeForm(range, reload) {
  const from = field({name: 'from', label: t('settlements.from'), type: 'date', value: range.from});
  const to = field({name: 'to', label: t('settlements.to'), type: 'date', value: range.to});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('settlements.show'));
  const form = h('form', {novalidate: true, class: 'inline'}, from.row, to.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([from, to], message);
    const previous = {...range};
    range.from = from.input.value;
    range.to = to.input.value;
    busy(submit, async () => {
      try {
        await reload();
      } catch (error) {
        Object.assign(range, previous);
        showError([from, to], message, error);
      }
    });
  });
  return form;
}

async function showDetail(date, area) {
  replace(area, h('h2', {id: 'settlement-detail', tabindex: '-1'}, t('settlements.detail', {date})), h('p', null, t('app.loading')));
  try {
    const path = `/v1/admin/settlements/${date}`;
    const [report, csv] = await Promise.all([
      api.request('GET', path),
      api.request('GET', path, {accept: 'text/csv'}),
    ]);
    replace(area,
      h('h2', {id: 'settlement-detail', tabindex: '-1'}, t('settlements.detail', {date})),
      h('p', null, t('settlements.totals', {fee: won(report.total_fee), total: won(report.total_net_payable)}), ' ',
        csvLink(csv, `settlement-${date}.csv`, t('settlements.download', {date}), 'settlement-csv')),
      table(t('settlements.lines', {date}),
        ['merchant_name', 'business_number', 'bank_account', 'payments', 'refunds', 'fee', 'carried_in', 'net_payable']
          .map((name) => t('settlements.' + name)),
        report.merchants.map((line) => [
          line.merchant_name,
          line.business_number,
          line.bank_account,
          `${count(line.payments_count)} · ${won(line.payments_amount)}`,
          `${count(line.refunds_count)} · ${won(line.refunds_amount)}`,
          won(line.fee),
          won(line.carried_in),
          h('span', {class: line.net_payable.startsWith('-') ? 'negative' : null}, won(line.net_payable)),
        ])));
  } catch (error) {
    replace(area, h('h2', {id: 'settlement-detail', tabindex: '-1'}, t('settlements.detail', {date})),
      h('p', {class: 'error', role: 'alert'}, errorText(error)));
  }
  area.querySelector('h2').focus();
}
