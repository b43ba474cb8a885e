// The city at a glance, from GET /v1/admin/status (one request: the server keeps the trial
// balance from its background check, so this page never makes it sum the books), refreshed
// every few seconds while the page is shown, with sessions and the waiting line drawn live.

import * as api from '../api.js';
import {h, replace, figure} from '../dom.js';
import {lineChart} from '../chart.js';
import {won, count, time} from '../format.js';
import {t, errorText} from '../i18n.js';

/** Seconds between two reads of the status while the page is shown. */
const REFRESH_S = 3;
/** Samples the chart keeps (3 minutes at one every 3 s). */
const SAMPLES_MAX = 60;
/** Kept while the console is open, so going back to the overview keeps the chart's history. */
const samples = [];

export async function render(container, context) {
  const figures = h('div');
  const chart = h('div', {class: 'chart-box'});
  const problem = h('div');
  const stamp = h('p', {class: 'hint'});
  replace(container,
    problem,
    figures,
    h('section', {'aria-labelledby': 'live-title'},
      h('h2', {id: 'live-title'}, t('overview.live')),
      h('p', {class: 'legend'},
        h('span', {class: 'key key-active'}, t('overview.sessions_active')),
        ' ',
        h('span', {class: 'key key-waiting'}, t('overview.waiting'))),
      chart),
    stamp);
  const status = await api.request('GET', '/v1/admin/status');
  draw(status, figures, chart, stamp);
  const refresh = async () => {
    if (!context.alive()) return;
    try {
      draw(await api.request('GET', '/v1/admin/status'), figures, chart, stamp);
      replace(problem);
    } catch (error) {
      if (!context.alive()) return;
      replace(problem, h('p', {class: 'error', role: 'alert'}, errorText(error)));
    }
    if (context.alive()) setTimeout(refresh, REFRESH_S * 1000);
  };
  setTimeout(refresh, REFRESH_S * 1000);
}

function draw(status, figures, chart, stamp) {
  samples.push({active: status.sessions.active, waiting: status.sessions.waiting});
  while (samples.length > SAMPLES_MAX) samples.shift();
  const books = status.books;
  const balanced = books.balanced === null ? t('overview.books_pending') : books.balanced ? t('overview.balanced') : t('overview.unbalanced');
  const reasons = status.reasons.map((reason) => h('li', null, `${reason.code}: ${reason.message}`));
  replace(figures,
    h('p', {class: status.status === 'ok' ? 'status-ok' : 'status-degraded'},
      t('overview.status'), ': ', t('overview.status_' + status.status)),
    reasons.length ? h('ul', {class: 'reasons'}, reasons) : null,
    h('div', {class: 'cards'},
      card(t('overview.books'), [
        figure(t('overview.books_state'), balanced),
        figure(t('overview.trial_balance_total'), won(books.trial_balance_total),
          {'data-testid': 'trial-balance-total', 'data-value': books.trial_balance_total ?? ''}),
        figure(t('overview.checked_at'), time(books.checked_at)),
      ]),
      card(t('overview.budget'), [
        figure(t('overview.budget_remaining'), won(status.cashback_budget.remaining),
          {'data-testid': 'budget-remaining', 'data-value': status.cashback_budget.remaining}),
        figure(t('overview.budget_funded'), won(status.cashback_budget.funded)),
        figure(t('overview.budget_paid_out'), won(status.cashback_budget.paid_out)),
      ]),
      card(t('overview.today', {date: status.today.business_date}), [
        figure(t('overview.payments'), `${count(status.today.payments_count)} · ${won(status.today.payments_amount)}`,
          {'data-testid': 'payments-today', 'data-value': status.today.payments_amount}),
        figure(t('overview.refunds'), `${count(status.today.refunds_count)} · ${won(status.today.refunds_amount)}`),
      ]),
      card(t('overview.sessions'), [
        figure(t('overview.sessions_active'), `${count(status.sessions.active)} / ${count(status.sessions.capacity)}`,
          {'data-testid': 'sessions-active', 'data-value': String(status.sessions.active)}),
        figure(t('overview.waiting'), count(status.sessions.waiting),
          {'data-testid': 'waiting-count', 'data-value': String(status.sessions.waiting)}),
      ])));
  const last = samples[samples.length - 1];
  replace(chart, lineChart([
    {className: 'active', values: samples.map((sample) => sample.active)},
    {className: 'waiting', values: samples.map((sample) => sample.waiting)},
  ], t('overview.chart_summary', {samples: samples.length, active: last.active, waiting: last.waiting})));
  replace(stamp, t('overview.as_of', {time: time(status.now), seconds: REFRESH_S}));
}

function card(title, figures) {
  return h('section', {class: 'card'}, h('h2', null, title), h('dl', null, figures));
}
