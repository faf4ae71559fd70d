"""The portal's web application: HTML pages and the JSON REST API (FastAPI), behind
an access token.

Every route, pages, API and static files alike, needs the token: as
``Authorization: Bearer TOKEN``, as the cookie set by a first visit with
``?token=TOKEN``, or in that query itself. Blocking work (reading the store, parsing
blueprints, reading a job's output over SSH) runs in FastAPI's thread pool; workflows
run in worker processes (``service.Workers``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from fastapi import Body, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, \
    StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from .. import runner
from . import service
from .service import PortalError

HERE = os.path.dirname(os.path.abspath(__file__))
COOKIE = 'croupier_token'
log = logging.getLogger('croupier.web')


class InstanceRequest(BaseModel):
    """``POST /api/v1/instances``: an instance of an application with its inputs."""
    application: str
    name: str
    inputs: dict[str, Any] = Field(default_factory=dict)


class ExecutionRequest(BaseModel):
    """``POST /api/v1/instances/NAME/executions``: a workflow and its parameters."""
    workflow: str = 'run_jobs'
    parameters: dict[str, Any] = Field(default_factory=dict)


def _fmt_seconds(value: Optional[float]) -> str:
    """Seconds as 12.3s, 4m05s or 1h02m."""
    if value is None:
        return ''
    value = float(value)
    if value < 60:
        return f'{value:.1f}s'
    if value < 3600:
        return f'{int(value // 60)}m{int(value % 60):02d}s'
    return f'{int(value // 3600)}h{int(value % 3600 // 60):02d}m'


def create_app(token: str, catalogue: str) -> FastAPI:
    """The portal for the store under CROUPIER_HOME and the applications in
    ``catalogue``, answering only requests that carry ``token``."""
    app = FastAPI(title='Croupier Web', version='1', openapi_url='/api/v1/openapi.json',
                  docs_url=None, redoc_url=None,
                  description='The consumer\'s portal of Croupier: applications, '
                              'instances (named deployments), executions, jobs and logs. '
                              'Every call needs the access token printed by `croupier '
                              'serve` as `Authorization: Bearer TOKEN`.')
    apps = service.Catalogue(catalogue)
    templates = Jinja2Templates(directory=os.path.join(HERE, 'templates'))
    templates.env.filters['seconds'] = _fmt_seconds
    templates.env.filters['tojson_pretty'] = lambda v: json.dumps(v, indent=2, default=str)
    app.mount('/static', StaticFiles(directory=os.path.join(HERE, 'static')), name='static')

    def authorised(request: Request) -> bool:
        given = request.cookies.get(COOKIE) or request.query_params.get('token') or ''
        header = request.headers.get('authorization', '')
        if header.lower().startswith('bearer '):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), token.encode())

    @app.middleware('http')
    async def require_token(request: Request,
                            call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not authorised(request):
            if request.url.path.startswith('/api/'):
                return JSONResponse({'error': 'an access token is needed: '
                                     'Authorization: Bearer TOKEN'}, status_code=401,
                                    headers={'WWW-Authenticate': 'Bearer'})
            return HTMLResponse('<!doctype html><title>Croupier</title><h1>Croupier</h1>'
                                '<p>Open the address with the access token that '
                                '<code>croupier serve</code> printed.</p>', status_code=401)
        if 'token' in request.query_params and request.method == 'GET':
            # the token leaves the address bar (and the history) for a cookie
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != 'token']
            target = request.url.path + ('?' + urlencode(rest) if rest else '')
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, token, httponly=True, samesite='strict')
            return response
        return await call_next(request)

    @app.exception_handler(PortalError)
    async def portal_error(request: Request, exc: PortalError) -> JSONResponse:
        return JSONResponse({'error': str(exc), 'fields': exc.fields},
                            status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the exception's text may quote what it was given: only its type is told
        log.error('%s %s: %s', request.method, request.url.path, type(exc).__name__)
        return JSONResponse({'error': f'internal error ({type(exc).__name__})'},
                            status_code=500)

    # ------------------------------------------------------------ API

    @app.get('/api/v1/applications', tags=['applications'])
    def api_applications() -> list[dict]:
        """Every application of the catalogue (name, description, inputs, jobs)."""
        return [_summary(a) for a in apps.applications()]

    @app.post('/api/v1/applications', status_code=201, tags=['applications'])
    # (File, Body and Form in the defaults: FastAPI's way of declaring a parameter)
    def api_upload(package: UploadFile = File(..., description='a zip of the blueprint '  # noqa: B008
                                                             'folder'),
                   name: Optional[str] = Form(None)) -> dict:
        """Upload a blueprint package; validated as `croupier validate` does."""
        data = package.file.read(service.MAX_PACKAGE_BYTES + 1)
        return apps.add_package(package.filename or '', data, name or None).summary()

    @app.get('/api/v1/applications/{name}', tags=['applications'])
    def api_application(name: str) -> dict:
        """One application: description, inputs (types, defaults, constraints) and the
        jobs' dependency graph."""
        return apps.get(name).summary()

    @app.get('/api/v1/instances', tags=['instances'])
    def api_instances() -> list[dict]:
        """Every instance with its last execution (the dashboard)."""
        return service.dashboard()

    @app.post('/api/v1/instances', status_code=202, tags=['instances'])
    def api_create(request: InstanceRequest) -> dict:
        """Validate the inputs, then install the instance in a worker process."""
        return service.create_instance(apps.get(request.application), request.name,
                                       request.inputs)

    @app.get('/api/v1/instances/{name}', tags=['instances'])
    def api_instance(name: str) -> dict:
        """Inputs (secrets masked), jobs, executions and job graph of an instance."""
        return service.instance_view(name)

    @app.delete('/api/v1/instances/{name}', status_code=202, tags=['instances'])
    def api_uninstall(name: str) -> dict:
        """Uninstall the instance (in a worker) and forget it."""
        return service.uninstall_instance(name)

    @app.get('/api/v1/instances/{name}/executions', tags=['executions'])
    def api_executions(name: str) -> list[dict]:
        """The instance's executions, newest first."""
        return service.instance_view(name)['executions']

    @app.post('/api/v1/instances/{name}/executions', status_code=202, tags=['executions'])
    def api_execute(name: str, request: ExecutionRequest = Body(default=None)) -> dict:  # noqa: B008
        """Start a workflow (default run_jobs) on the instance in a worker process."""
        request = request or ExecutionRequest()
        return service.start_execution(name, request.workflow, request.parameters)

    @app.post('/api/v1/executions/{execution_id}/cancel', status_code=202,
              tags=['executions'])
    def api_cancel(execution_id: str) -> dict:
        """Cancel a running execution (its running jobs are cancelled)."""
        return service.cancel_execution(execution_id)

    @app.get('/api/v1/instances/{name}/logs', tags=['instances'])
    def api_logs(name: str, offset: int = 0, limit: int = 50, level: str = '',
                 event_type: str = '', execution: str = '') -> dict:
        """A page of the instance's logs and events, filtered."""
        service.check_name(name, 'instance')
        return service.read_logs(name, offset, limit, level, event_type, execution)

    @app.get('/api/v1/instances/{name}/jobs/{job}/output', tags=['instances'])
    def api_output(name: str, job: str, stream: str = 'stdout', lines: int = 50) -> dict:
        """The last lines of a job's stdout or stderr."""
        return {'job': job, 'stream': stream,
                'text': service.job_output(name, job, stream, lines)}

    @app.get('/api/v1/instances/{name}/events', tags=['instances'],
             response_class=StreamingResponse)
    async def api_events(name: str, request: Request) -> StreamingResponse:
        """Server-sent events: the instance (as GET gives it) each time it changes."""
        service.check_name(name, 'instance')

        def view() -> dict:
            try:
                return service.instance_view(name)
            except PortalError as exc:
                return {'name': name, 'gone': True, 'error': str(exc)}
        return _stream(request, view)

    @app.get('/api/v1/dashboard/events', tags=['instances'],
             response_class=StreamingResponse)
    async def api_dashboard_events(request: Request) -> StreamingResponse:
        """Server-sent events: every instance with its last execution (as
        ``GET /api/v1/instances`` gives them) each time any of them changes."""
        return _stream(request, service.dashboard)

    # ------------------------------------------------------------ pages

    def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, template, context, status_code=status)

    @app.get('/', response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page(request: Request) -> Response:
        return page(request, 'dashboard.html', rows=service.dashboard(),
                    applications=apps.applications())

    @app.get('/applications', response_class=HTMLResponse, include_in_schema=False)
    def applications_page(request: Request) -> Response:
        return page(request, 'applications.html', applications=_listing(apps))

    @app.post('/applications', response_class=HTMLResponse, include_in_schema=False)
    def upload_page(request: Request, package: UploadFile = File(None),  # noqa: B008
                    name: str = Form('')) -> Response:
        try:
            if package is None or not package.filename:
                raise PortalError('choose a zip of the blueprint folder', 'package')
            data = package.file.read(service.MAX_PACKAGE_BYTES + 1)
            added = apps.add_package(package.filename, data, name or None)
        except PortalError as exc:
            return page(request, 'applications.html', status=exc.status,
                        applications=_listing(apps), errors=exc.fields or {'package': str(exc)},
                        given={'name': name})
        return RedirectResponse(f'/applications/{added.name}', status_code=303)

    def application_page(request: Request, app_name: str, status: int = 200,
                         errors: Optional[dict] = None, given: Optional[dict] = None,
                         error: str = '', mode: str = 'basic') -> Response:
        application = apps.get(app_name)
        plan = application.plan()
        graph = service.job_graph(plan.get('nodes') or [])
        specs = service.input_specs(plan.get('inputs'))
        return page(request, 'application.html', status=status, app=application,
                    description=str(plan.get('description') or '').strip(),
                    specs=specs, svg=service.graph_svg(graph), graph=graph,
                    errors=errors or {}, given=given or {}, error=error, mode=mode)

    @app.get('/applications/{app_name}', response_class=HTMLResponse, include_in_schema=False)
    def application_get(request: Request, app_name: str) -> Response:
        return application_page(request, app_name)

    @app.post('/applications/{app_name}', response_class=HTMLResponse, include_in_schema=False)
    async def create_page(request: Request, app_name: str) -> Response:
        form = await request.form()
        mode = str(form.get('mode') or 'basic')
        name = str(form.get('instance_name') or '')
        given = {k[len('input.'):]: str(v) for k, v in form.items()
                 if k.startswith('input.') and isinstance(v, str)}
        upload = form.get('inputs_file')
        expert = str(form.get('expert_yaml') or '')
        upload_data = await upload.read() if upload is not None and \
            not isinstance(upload, str) and upload.filename else None

        def create() -> Response:
            application = apps.get(app_name)
            specs = service.input_specs(application.plan().get('inputs'))
            try:
                if mode == 'expert':
                    inputs = _yaml_inputs(expert, 'expert_yaml', 'the YAML inputs')
                elif mode == 'file':
                    if upload_data is None:
                        raise PortalError('choose an inputs file', 'inputs_file')
                    inputs = _yaml_inputs(upload_data.decode('utf-8', errors='replace'),
                                          'inputs_file', 'inputs file')
                else:
                    inputs = service.convert_inputs(specs, given)
                service.create_instance(application, name or '', inputs)
            except PortalError as exc:
                shown = {k: ('' if s.secret else given.get(k, ''))
                         for s in specs for k in [s.name]}
                errors = dict(exc.fields)
                if mode == 'expert' and not exc.field and 'name' not in errors:
                    errors.setdefault('expert_yaml', str(exc))
                if mode == 'file' and not exc.field and 'name' not in errors:
                    errors.setdefault('inputs_file', str(exc))
                if exc.field == 'name' or 'name' in errors:
                    errors['instance_name'] = errors.pop('name', str(exc))
                return application_page(request, app_name, status=exc.status, errors=errors,
                                        error=str(exc) if not errors else '',
                                        given=dict(shown, instance_name=name,
                                                   expert_yaml=_without_secrets(expert)),
                                        mode=mode)
            return RedirectResponse(f'/instances/{name}', status_code=303)
        return await asyncio.to_thread(create)

    @app.get('/instances/{name}', response_class=HTMLResponse, include_in_schema=False)
    def instance_page(request: Request, name: str, level: str = '', event_type: str = '',
                      offset: int = 0, message: str = '') -> Response:
        view = service.instance_view(name)
        states = {}
        for job in view['jobs']:
            states[job['node']] = job['state']
        logs = service.read_logs(name, offset, 25, level, event_type)
        return page(request, 'instance.html', view=view,
                    svg=service.graph_svg(view['graph'], states), logs=logs,
                    level=level, event_type=event_type, message=message)

    @app.post('/instances/{name}/action', include_in_schema=False)
    def instance_action(request: Request, name: str, action: str = Form(...)) -> Response:
        try:
            if action == 'execute':
                service.start_execution(name, 'run_jobs', {})
                message = 'run_jobs started'
            elif action == 'rerun':
                service.start_execution(name, 'run_jobs', {'rerun_failed': True})
                message = 'run_jobs started again for the jobs that failed'
            elif action == 'cancel':
                running = service.instance_view(name)['running_execution']
                if not running:
                    raise PortalError('no execution is running')
                service.cancel_execution(running)
                message = 'cancel requested'
            elif action == 'uninstall':
                service.uninstall_instance(name)
                message = 'uninstall started'
            else:
                raise PortalError(f'unknown action {action!r}', 'action')
        except PortalError as exc:
            message = f'error: {exc}'
        return RedirectResponse(f'/instances/{name}?' + urlencode({'message': message}),
                                status_code=303)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({'error': f'not found: {request.url.path}'}, status_code=404)

    return app


# How often a page's stream reads the store again
STREAM_SECONDS = 1.0


def _stream(request: Request, read: Callable[[], Any]) -> StreamingResponse:
    """Server-sent events of what ``read()`` answers (read in a thread), sent again
    each time it changes, until the client goes away."""
    async def stream() -> AsyncIterator[str]:
        last = None
        while not await request.is_disconnected():
            text = json.dumps(await asyncio.to_thread(read), default=str)
            if text != last:
                last = text
                yield f'data: {text}\n\n'
            else:
                yield ': still here\n\n'
            await asyncio.sleep(STREAM_SECONDS)
    return StreamingResponse(stream(), media_type='text/event-stream',
                             headers={'Cache-Control': 'no-store'})


def _summary(application: service.Application) -> dict:
    """An application's summary, or its error when its blueprint no longer parses."""
    try:
        return application.summary()
    except PortalError as exc:
        return {'name': application.name, 'error': str(exc)}


def _listing(apps: service.Catalogue) -> list[dict]:
    """The applications page's rows."""
    return [_summary(a) for a in apps.applications()]


def _without_secrets(text: str) -> str:
    """The Expert editor's text as it may be shown again: the value of every line
    whose key names a secret is emptied (the user types it again)."""
    import re
    lines = []
    for line in text.splitlines():
        found = re.match(r'^(\s*)([A-Za-z0-9_.-]+)\s*:', line)
        if found and service.secret_name(found.group(2)):
            line = f"{found.group(1)}{found.group(2)}: ''"
        lines.append(line)
    return '\n'.join(lines)


def _yaml_inputs(text: str, field_name: str, what: str) -> dict:
    """Inputs given as a YAML mapping (the Expert editor or an uploaded file)."""
    try:
        data = runner.parse_yaml(text, what) if text.strip() else {}
    except ValueError as exc:
        raise PortalError(str(exc), field_name) from None
    if not isinstance(data, dict):
        raise PortalError(f'{what}: a mapping of input names to values', field_name)
    return data
