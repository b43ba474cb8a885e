// City programs: the list with budgets (by cohort for a charge bonus), a new program, a budget
// top-up, and allowances granted from a file (grant-file.js) with progress.

import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {field, messageArea, showMessage, showError, clearErrors, busy} from '../form.js';
import {won, count, time} from '../format.js';
import {t, errorText} from '../i18n.js';
import * as grantFile from '../grant-file.js';

export async function render(container, context) {
  const listArea = h('div');
  // The forms are made once and told the programs after each reload, so what they show (a
  // message, the progress of a grant) stays while the list changes.
  const programs = [];
  const listeners = [];
  async function reload() {
    const items = (await api.request('GET', '/v1/admin/programs')).items;
    if (!context.alive()) return;
    programs.splice(0, programs.length, ...items);
    replace(listArea, programs.length ? programTables(programs) : h('p', null, t('programs.none')));
    for (const listener of listeners) listener(programs);
  }
  replace(container,
    h('section', {'aria-labelledby': 'programs-list'}, h('h2', {id: 'programs-list'}, t('programs.list')), listArea),
    topUpForm(programs, listeners, reload),
    grantForm(programs, listeners, reload, context),
    createForm(reload));
  await reload();
}

function programTables(programs) {
  const rows = programs.map((program) => {
    const budget = program.budget;
    const rules = program.kind === 'allowance'
      ? (program.valid_days ? t('programs.valid_days_n', {days: program.valid_days}) : t('programs.until', {date: program.expires_on}))
      : t('programs.window', {rate: program.rate, opens: time(program.opens_at), closes: time(program.closes_at)});
    return [
      program.name,
      t('programs.kind_' + program.kind),
      rules,
      won(budget.funded),
      won(budget.granted ?? budget.paid_out),
      won(budget.remaining),
    ];
  });
  const cohorts = programs.filter((program) => program.kind === 'charge_bonus' && program.budget.cohorts);
  return [
    table(t('programs.table'), ['name', 'kind', 'rules', 'funded', 'used', 'remaining'].map((name) => t('programs.' + name)), rows),
    cohorts.map((program) => table(t('programs.cohorts', {name: program.name}),
      ['cohort', 'opens_at', 'share', 'paid_out', 'remaining'].map((name) => t('programs.cohort_' + name)),
      program.budget.cohorts.map((cohort) => [String(cohort.cohort), time(cohort.opens_at), won(cohort.share), won(cohort.paid_out), won(cohort.remaining)]))),
  ];
}

/** A select of the programs (of one kind), kept to the list as it reloads; its choice is kept. */
function programSelect(listeners, name, only, submit) {
  const select = field({name, label: t('programs.program'), type: 'select'});
  listeners.push((programs) => {
    const chosen = select.input.value;
    const shown = programs.filter((program) => !only || program.kind === only);
    replace(select.input, shown.map((program) => h('option', {value: program.program_id, selected: program.program_id === chosen},
      `${program.name} (${t('programs.kind_' + program.kind)})`)));
    submit.disabled = shown.length === 0;
  });
  return select;
}

function topUpForm(programs, listeners, reload) {
  const submit = h('button', {type: 'submit', disabled: true}, t('programs.top_up'));
  const program = programSelect(listeners, 'program_id', null, submit);
  const amount = field({name: 'amount', label: t('programs.amount'), hint: t('policy.won_hint'), props: {inputmode: 'numeric', autocomplete: 'off'}});
  const message = messageArea();
  const form = h('form', {novalidate: true}, program.row, amount.row, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([program, amount], message);
    busy(submit, async () => {
      try {
        const answer = await api.request('POST', `/v1/admin/programs/${encodeURIComponent(program.input.value)}/budget-top-ups`,
          {body: {amount: amount.input.value.trim()}, key: api.newKey()});
        await reload();
        showMessage(message, {kind: 'success', text: t('programs.topped_up', {remaining: won(answer.budget.remaining)})});
      } catch (error) {
        showError([program, amount], message, error);
      }
    });
  });
  return h('section', {'aria-labelledby': 'program-top-up'}, h('h2', {id: 'program-top-up'}, t('programs.top_up_title')), form);
}

function grantForm(programs, listeners, reload, context) {
  const submit = h('button', {type: 'submit', disabled: true}, t('programs.grant'));
  const program = programSelect(listeners, 'grant_program_id', 'allowance', submit);
  const file = field({name: 'grant_file', label: t('programs.file'), type: 'file', hint: t('programs.file_hint'), props: {accept: '.csv,text/csv'}});
  const progress = h('progress', {max: '1', value: '0', 'aria-label': t('programs.progress'), hidden: true});
  const progressText = h('p', {class: 'hint', 'aria-live': 'polite', 'data-testid': 'grant-progress'});
  const message = messageArea();
  const form = h('form', {novalidate: true}, program.row, file.row, submit, progress, progressText, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors([program, file], message);
    const chosen = file.input.files[0];
    if (!chosen) {
      showMessage(message, {kind: 'error', text: t('programs.file_missing')});
      return;
    }
    busy(submit, () => grant(chosen, programs.find((one) => one.program_id === program.input.value), {progress, progressText, message, reload, context}));
  });
  return h('section', {'aria-labelledby': 'program-grant'}, h('h2', {id: 'program-grant'}, t('programs.grant_title')),
    h('p', null, t('programs.grant_intro', {lines: count(grantFile.LINES_PER_REQUEST)})), form);
}

async function grant(chosen, program, {progress, progressText, message, reload, context}) {
  if (chosen.size > grantFile.FILE_BYTES_MAX) {
    showMessage(message, {kind: 'error', text: t('programs.file_too_large')});
    return;
  }
  const bytes = await chosen.arrayBuffer();
  const parsed = grantFile.parse(new TextDecoder('utf-8').decode(bytes));
  if (parsed.problems) {
    replace(message, h('div', {role: 'alert', class: 'error'}, h('p', null, t('programs.file_refused')),
      h('ul', null, parsed.problems.map((problem) => h('li', null, t(problem.key, problem.params))))));
    return;
  }
  const needed = grantFile.total(parsed.lines);
  if (needed > BigInt(program.budget.remaining)) {
    showMessage(message, {kind: 'error', text: t('programs.over_budget', {needed: won(needed.toString()), remaining: won(program.budget.remaining)})});
    return;
  }
  const requests = grantFile.requests(parsed.lines, await grantFile.fingerprint(bytes), program.program_id);
  progress.hidden = false;
  progress.max = parsed.lines.length;
  let done = 0;
  let granted = 0;
  for (const part of requests) {
    progress.value = done;
    replace(progressText, t('programs.granting', {done: count(done), total: count(parsed.lines.length)}));
    try {
      const answer = await api.request('POST', `/v1/admin/programs/${encodeURIComponent(program.program_id)}/grants`, {body: part.body, key: part.key});
      granted += answer.granted;
    } catch (error) {
      const rows = error.body && Array.isArray(error.body.rows) ? error.body.rows : [];
      replace(message, h('div', {role: 'alert', class: 'error'},
        h('p', null, t('programs.grant_stopped', {done: count(done), line: part.first}), ' ', errorText(error)),
        rows.length ? h('ul', null, rows.slice(0, 10).map((row) => h('li', null,
          t('programs.row_problem', {line: part.lines[row.index] ? part.lines[row.index].line : '?', code: t('grant.code_' + row.code)})))) : null));
      if (context.alive()) await reload().catch(() => {});
      return;
    }
    done += part.lines.length;
  }
  progress.value = done;
  replace(progressText, t('programs.granting', {done: count(done), total: count(parsed.lines.length)}));
  await reload();
  showMessage(message, {kind: 'success', text: t('programs.granted', {lines: count(done), granted: count(granted), amount: won(needed.toString())})});
}

function createForm(reload) {
  const kind = field({name: 'kind', label: t('programs.kind'), type: 'select', value: 'allowance',
    props: {options: [['allowance', t('programs.kind_allowance')], ['charge_bonus', t('programs.kind_charge_bonus')]]}});
  const name = field({name: 'name', label: t('programs.name')});
  const allowance = [
    field({name: 'valid_days', label: t('programs.valid_days'), hint: t('programs.valid_days_hint'), props: {inputmode: 'numeric'}}),
    field({name: 'expires_on', label: t('programs.expires_on'), type: 'date', hint: t('programs.expires_on_hint')}),
    field({name: 'merchant_categories', label: t('programs.categories'), hint: t('programs.categories_hint')}),
    field({name: 'excluded_merchant_categories', label: t('programs.excluded'), hint: t('programs.categories_hint')}),
    field({name: 'merchant_annual_revenue_max', label: t('programs.revenue_max'), hint: t('merchants.optional'), props: {inputmode: 'numeric'}}),
  ];
  const bonus = [
    field({name: 'rate', label: t('programs.rate'), hint: t('policy.rate_hint'), props: {inputmode: 'decimal'}}),
    field({name: 'monthly_charge_cap', label: t('programs.monthly_charge_cap'), hint: t('policy.won_hint'), props: {inputmode: 'numeric'}}),
    field({name: 'opens_at', label: t('programs.opens_at'), type: 'datetime-local', hint: t('programs.kst')}),
    field({name: 'closes_at', label: t('programs.closes_at'), type: 'datetime-local', hint: t('programs.kst')}),
    field({name: 'cohorts', label: t('programs.cohorts_n'), value: '1', props: {inputmode: 'numeric'}}),
    field({name: 'cohort_interval_s', label: t('programs.cohort_interval_s'), value: '0', props: {inputmode: 'numeric'}}),
  ];
  const allowanceSet = h('fieldset', null, h('legend', null, t('programs.kind_allowance')), allowance.map((item) => item.row));
  const bonusSet = h('fieldset', {hidden: true}, h('legend', null, t('programs.kind_charge_bonus')), bonus.map((item) => item.row));
  kind.input.addEventListener('change', () => {
    allowanceSet.hidden = kind.input.value !== 'allowance';
    bonusSet.hidden = kind.input.value === 'allowance';
  });
  const fields = [kind, name, ...allowance, ...bonus];
  const message = messageArea();
  const submit = h('button', {type: 'submit'}, t('programs.create'));
  const form = h('form', {novalidate: true}, kind.row, name.row, allowanceSet, bonusSet, submit, message);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors(fields, message);
    const body = {kind: kind.input.value, name: name.input.value.trim()};
    const value = (item) => item.input.value.trim();
    const numbers = [];
    const chosen = body.kind === 'allowance' ? allowance : bonus;
    for (const item of chosen) {
      const text = value(item);
      if (text === '') continue;
      if (['valid_days', 'cohorts', 'cohort_interval_s'].includes(item.name)) {
        if (!/^[0-9]{1,9}$/.test(text)) numbers.push(item);
        body[item.name] = Number(text);
      } else if (item.name.endsWith('categories')) {
        body[item.name] = text.split(',').map((part) => part.trim()).filter(Boolean);
      } else if (item.type === 'datetime-local' || item.input.type === 'datetime-local') {
        body[item.name] = `${text.length === 16 ? text + ':00' : text}+09:00`;
      } else {
        body[item.name] = text;
      }
    }
    if (numbers.length) {
      showError(fields, message, {status: 422, message: `${numbers[0].name}: ${t('form.whole_number')}`});
      return;
    }
    busy(submit, async () => {
      try {
        const created = await api.request('POST', '/v1/admin/programs', {body, key: api.newKey()});
        await reload();
        showMessage(message, {kind: 'success', text: t('programs.created', {name: created.name})});
      } catch (error) {
        showError(fields, message, error);
      }
    });
  });
  return h('section', {'aria-labelledby': 'program-new'}, h('h2', {id: 'program-new'}, t('programs.new')), form);
}
