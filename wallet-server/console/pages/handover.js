// Handover status and the server's own state, from GET /v1/admin/status: the last bundle
// imported and exported (a change of operator, docs/HANDOVER.md), the writer, the database and
// the last settlement.

import * as api from '../api.js';
import {h, replace, figure} from '../dom.js';
import {won, count, time} from '../format.js';
import {t} from '../i18n.js';

export async function render(container) {
  const status = await api.request('GET', '/v1/admin/status');
  const imported = status.handover.last_import;
  const exported = status.handover.last_export;
  const writer = status.writer;
  replace(container,
    h('p', null, t('handover.intro')),
    h('div', {class: 'cards'},
      card(t('handover.last_import'), imported ? [
        figure(t('handover.sequence'), String(imported.sequence)),
        figure(t('handover.kind'), imported.kind),
        figure(t('handover.operator'), imported.operator),
        figure(t('handover.as_of'), time(imported.as_of)),
        figure(t('handover.applied_at'), time(imported.applied_at)),
      ] : [figure(t('handover.last_import'), t('handover.never_imported'))]),
      card(t('handover.last_export'), exported ? [
        figure(t('handover.sequence'), String(exported.sequence)),
        figure(t('handover.kind'), exported.kind),
        figure(t('handover.exported_at'), time(exported.exported_at)),
      ] : [figure(t('handover.last_export'), t('handover.never_exported'))]),
      card(t('handover.last_settlement'), status.last_settlement ? [
        figure(t('settlements.business_date'), status.last_settlement.business_date),
        figure(t('settlements.total_net_payable'), won(status.last_settlement.total_net_payable)),
        figure(t('settlements.closed_at'), time(status.last_settlement.closed_at)),
      ] : [figure(t('handover.last_settlement'), t('handover.never_settled'))]),
      card(t('handover.server'), [
        figure(t('handover.version'), status.version),
        figure(t('handover.uptime'), t('handover.uptime_s', {seconds: count(status.uptime_s)})),
        figure(t('handover.database'), status.database === 'postgres' ? 'PostgreSQL' : 'SQLite'),
        figure(t('handover.now'), time(status.now)),
        status.test_clock ? figure(t('handover.test_clock'), t('handover.test_clock_ahead', {seconds: count(status.test_clock.ahead_of_real_time_s)})) : null,
      ]),
      card(t('handover.writer'), [
        figure(t('handover.batches'), count(writer.batches_total)),
        figure(t('handover.commands'), count(writer.commands_total)),
        figure(t('handover.failed'), count(writer.batches_failed_total)),
        figure(t('handover.last_batch'), time(writer.last_batch_at)),
      ])));
}

function card(title, figures) {
  return h('section', {class: 'card'}, h('h2', null, title), h('dl', null, figures));
}
