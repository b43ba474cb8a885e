// The merchant's day: sales of a business date (today by default, as the server counts it), its
// own payments, and a refund of one of them.

import * as api from '../api.js';
import {h, replace, table, figure} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy} from '../form.js';
import {won, count, time} from '../format.js';
import {t} from '../i18n.js';

const PAGE_LIMIT = 50;

export async function render(container, context) {
  const summary = h('div');
  const payments = h('section', {'aria-labelledby': 'payments-title'});
  const refundArea = h('div', {class: 'row-actions'});
  const state = {date: undefined, cursors: []};

  async function load(notice) {
    const sales = await api.request('GET', '/v1/merchant/sales', {query: {date: state.date}});
    state.date = sales.business_date;
    const page = await api.request('GET', '/v1/merchant/payments',
      {query: {date: state.date, limit: PAGE_LIMIT, cursor: state.cursors[state.cursors.length - 1]}});
    if (!context.alive()) return;
    replace(summary, h('section', {class: 'card', 'aria-labelledby': 'sales-title'},
      h('h2', {id: 'sales-title'}, t('sales.of', {date: sales.business_date})),
      h('dl', null,
        figure(t('sales.payments'), `${count(sales.payments_count)} · ${won(sales.payments_amount)}`,
          {'data-testid': 'sales-payments', 'data-value': sales.payments_amount}),
        figure(t('sales.refunds'), `${count(sales.refunds_count)} · ${won(sales.refunds_amount)}`),
        figure(t('sales.net'), won(sales.net), {'data-testid': 'sales-net', 'data-value': sales.net}))));
    replace(payments,
      h('h2', {id: 'payments-title'}, t('sales.payments_title', {date: sales.business_date})),
      page.items.length
        ? table(t('sales.payments_table'), ['at', 'payment_id', 'amount', 'refunded', 'cashback', 'actions'].map((name) => t('sales.' + name)),
          page.items.map((payment) => [
            time(payment.at),
            h('code', null, payment.payment_id),
            won(payment.amount),
            won(payment.refunded),
            won(payment.cashback),
            BigInt(payment.refunded) < BigInt(payment.amount)
              ? h('button', {type: 'button', on: {click: () => refundForm(payment, refundArea, load)}},
                t('sales.refund'), h('span', {class: 'visually-hidden'}, ` ${won(payment.amount)} ${time(payment.at)}`))
              : t('sales.refunded_fully'),
          ]))
        : h('p', null, t('sales.none')),
      h('div', null,
        state.cursors.length ? h('button', {type: 'button', on: {click: () => { state.cursors.pop(); load(); }}}, t('list.previous')) : null,
        page.next_cursor ? h('button', {type: 'button', on: {click: () => { state.cursors.push(page.next_cursor); load(); }}}, t('list.older')) : null));
    if (notice) context.announce(notice);
  }

  const date = field({name: 'date', label: t('sales.date'), type: 'date'});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('sales.show'));
  const form = h('form', {novalidate: true, class: 'inline'}, date.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([date], message);
    const previous = state.date;
    state.date = date.input.value || undefined;
    state.cursors = [];
    busy(submit, async () => {
      try {
        await load();
      } catch (error) {
        state.date = previous;
        showError([date], message, error);
      }
    });
  });
  replace(container, summary, form, refundArea, payments);
  await load();
  date.input.value = state.date;
}

function refundForm(payment, area, reload) {
  const left = (BigInt(payment.amount) - BigInt(payment.refunded)).toString();
  const amount = field({name: 'amount', label: t('sales.refund_amount'), value: left,
    hint: t('sales.refund_hint', {left: won(left)}), props: {inputmode: 'numeric', autocomplete: 'off'}});
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('sales.refund_confirm'));
  const cancel = h('button', {type: 'button', class: 'secondary', on: {click: () => replace(area)}}, t('list.cancel'));
  const heading = h('h2', {tabindex: '-1'}, t('sales.refund_title', {amount: won(payment.amount), at: time(payment.at)}));
  // One key for this form: pressing the button again after a lost answer cannot refund twice.
  const key = api.newKey();
  let sentAmount = null;
  const form = h('form', {novalidate: true, class: 'reason'}, heading, amount.row, submit, ' ', cancel, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([amount], message);
    const value = amount.input.value.trim();
    busy(submit, async () => {
      try {
        // A different amount is a different refund: it gets its own key.
        const sendKey = sentAmount === null || sentAmount === value ? key : api.newKey();
        sentAmount = value;
        const refund = await api.request('POST', `/v1/payments/${encodeURIComponent(payment.payment_id)}/refunds`,
          {body: {amount: value}, key: sendKey});
        replace(area);
        await reload(t('sales.refund_done', {amount: won(refund.amount), cashback: won(refund.cashback_reversed)}));
        replace(area, h('p', {class: 'success', role: 'status'}, t('sales.refund_done', {amount: won(refund.amount), cashback: won(refund.cashback_reversed)})));
      } catch (error) {
        showError([amount], message, error);
      }
    });
  });
  replace(area, form);
  amount.input.focus();
}
