//! Injecting the faults: freezing an instance, killing connections, restarting PostgreSQL,
//! stopping Redis (or running the HA commands), and proving the services are private ones.

use super::*;

/// The faults, one after the other; returns their windows.
pub(super) async fn inject(env: &FaultEnv, endpoints: &[String], t0: Instant) -> anyhow::Result<Vec<Window>> {
    let mut windows = Vec::new();
    tokio::time::sleep(WARM_UP).await;

    // 1. One instance frozen, as a VM pause or a partition would: its batch may be holding
    // the schedule lock when it stops.
    let port = url::Url::parse(&endpoints[1])?
        .port()
        .context("the second --url has no port")?;
    let pid = server::pid_listening_on(port).context("no process listens on the second instance's port")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("boxoffice") {
        anyhow::bail!("process {pid} on port {port} is not a boxoffice server");
    }
    let start = t0.elapsed();
    {
        let _frozen = Frozen::stop(pid)?;
        tokio::time::sleep(FREEZE).await;
    }
    let over = t0.elapsed();
    tokio::time::sleep(AFTER).await;
    windows.push(Window {
        name: "freeze".into(),
        start,
        over,
        end: t0.elapsed(),
        detail: format!("SIGSTOP of instance 2 (pid {pid}) for {} s", FREEZE.as_secs()),
    });

    // 2. Every server connection to the database killed at once.
    let start = t0.elapsed();
    let mut admin = setup::connect(&env.database_url).await?;
    let killed = setup::count(
        &mut admin,
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .await?;
    drop(admin);
    let over = t0.elapsed();
    tokio::time::sleep(AFTER).await;
    windows.push(Window {
        name: "kill-connections".into(),
        start,
        over,
        end: t0.elapsed(),
        detail: format!("pg_terminate_backend of {killed} connections"),
    });

    // 3. PostgreSQL restarted (fast shutdown: every session ends, then it starts again).
    let start = t0.elapsed();
    run(Command::new(&env.pg_ctl)
        .arg("-D")
        .arg(&env.pg_data)
        .args(["-m", "fast", "-w", "-t", "60", "-l"])
        .arg(env.dir.join("pg.log"))
        .arg("restart"))
    .await?;
    let over = t0.elapsed();
    tokio::time::sleep(AFTER).await;
    windows.push(Window {
        name: "pg-restart".into(),
        start,
        over,
        end: t0.elapsed(),
        detail: format!(
            "pg_ctl restart -m fast took {:.1} s",
            (over - start).as_secs_f64()
        ),
    });

    // 4. Redis stopped, and started again from its append-only file.
    let start = t0.elapsed();
    let mut redis = env.redis().await?;
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut redis).await;
    drop(redis);
    tokio::time::sleep(REDIS_DOWN).await;
    run(Command::new("redis-server").arg(env.dir.join("redis.conf"))).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.redis().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let over = t0.elapsed();
    tokio::time::sleep(AFTER).await;
    windows.push(Window {
        name: "redis-stop".into(),
        start,
        over,
        end: t0.elapsed(),
        detail: format!("Redis down for {:.1} s", (over - start).as_secs_f64()),
    });
    Ok(windows)
}

/// `FAULTS_HA_COMMANDS`: the faults as (name, shell command), in order.
pub(super) fn ha_commands() -> anyhow::Result<Option<Vec<(String, String)>>> {
    let Ok(raw) = std::env::var("FAULTS_HA_COMMANDS") else {
        return Ok(None);
    };
    let commands = raw
        .split(';')
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            let (name, command) = c
                .split_once('=')
                .context("FAULTS_HA_COMMANDS is name=command;name=command")?;
            Ok((name.trim().to_owned(), command.trim().to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!commands.is_empty(), "FAULTS_HA_COMMANDS names no command");
    Ok(Some(commands))
}

/// Each command is one fault: its window opens when it starts and its fault is over when
/// it returns (the command waits for the topology to be whole again).
/// The commands see the run's schedules in their environment (`targets`: e.g.
/// `FAULTS_QUEUE_SCHEDULE`), to aim at the Redis master that holds one of them.
pub(super) async fn inject_commands(
    commands: &[(String, String)],
    targets: &[(&str, i64)],
    t0: Instant,
) -> anyhow::Result<Vec<Window>> {
    let mut windows = Vec::new();
    tokio::time::sleep(WARM_UP).await;
    for (name, command) in commands {
        let start = t0.elapsed();
        let out = tokio::time::timeout(
            Duration::from_secs(300),
            Command::new("sh")
                .arg("-c")
                .arg(command)
                .envs(targets.iter().map(|(k, v)| (*k, v.to_string())))
                .output(),
        )
        .await
        .with_context(|| format!("`{command}` took more than 300 s"))?
        .with_context(|| format!("running `{command}`"))?;
        anyhow::ensure!(
            out.status.success(),
            "`{command}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let over = t0.elapsed();
        tokio::time::sleep(AFTER).await;
        windows.push(Window {
            name: name.clone(),
            start,
            over,
            end: t0.elapsed(),
            detail: format!(
                "`{command}` took {:.1} s: {}",
                (over - start).as_secs_f64(),
                String::from_utf8_lossy(&out.stdout).trim().replace('\n', "; ")
            ),
        });
    }
    Ok(windows)
}

pub(super) async fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{:?}", cmd.as_std());
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .with_context(|| format!("{shown} took too long"))?
        .with_context(|| format!("running {shown}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A process stopped with SIGSTOP; SIGCONT when dropped, whatever happens meanwhile.
pub(super) struct Frozen(u32);

impl Frozen {
    pub(super) fn stop(pid: u32) -> anyhow::Result<Self> {
        signal("STOP", pid)?;
        Ok(Self(pid))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = signal("CONT", self.0) {
            eprintln!("bench: faults: resuming {} failed: {e:#}", self.0);
        }
    }
}

pub(super) fn signal(name: &str, pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// The private services, proven to be the ones under test.
pub(super) struct FaultEnv {
    dir: PathBuf,
    pg_data: PathBuf,
    pg_ctl: PathBuf,
    pub(super) database_url: String,
    redis_url: String,
}

impl FaultEnv {
    pub(super) async fn check(ctx: &mut Ctx) -> anyhow::Result<Self> {
        anyhow::ensure!(
            ctx.endpoints.len() == 2,
            "faults takes --url twice (two instances)"
        );
        let dir = std::env::var_os("FAULTS_DIR").map(PathBuf::from).context(
            "FAULTS_DIR is not set: run scripts/faults, which makes a private PostgreSQL and Redis",
        )?;
        let dir = dir.canonicalize().context("FAULTS_DIR")?;
        let pg_data = dir.join("pg");
        let database_url = std::env::var("DATABASE_URL")
            .context("faults reads the database URL from DATABASE_URL (to reconnect after the restart)")?;
        let url = url::Url::parse(&database_url).context("DATABASE_URL")?;
        anyhow::ensure!(
            url.port().is_some_and(|p| p != 5432),
            "faults restarts PostgreSQL: never the shared one on 5432"
        );
        #[derive(QueryableByName)]
        struct Dir {
            #[diesel(sql_type = Text)]
            d: String,
        }
        let served: Dir = diesel::sql_query("SELECT current_setting('data_directory') AS d")
            .get_result(&mut ctx.db)
            .await
            .context("asking PostgreSQL for its data directory (needs a superuser)")?;
        anyhow::ensure!(
            Path::new(&served.d).canonicalize().ok().as_deref() == Some(pg_data.as_path()),
            "the database is served from {}, not from FAULTS_DIR/pg",
            served.d
        );
        let redis_url = ctx.redis_url.clone();
        let rurl = url::Url::parse(&redis_url).context("--redis-url")?;
        anyhow::ensure!(
            rurl.port().is_some_and(|p| p != 6379),
            "faults stops Redis: never the shared one on 6379"
        );
        let env = Self {
            pg_ctl: pg_ctl()?,
            dir,
            pg_data,
            database_url,
            redis_url,
        };
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut env.redis().await?)
            .await?;
        let conf = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("config_file:"))
            .unwrap_or_default()
            .to_owned();
        anyhow::ensure!(
            Path::new(&conf).canonicalize().ok() == Some(env.dir.join("redis.conf")),
            "Redis runs from `{conf}`, not from FAULTS_DIR/redis.conf"
        );
        Ok(env)
    }

    pub(super) async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let conn = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection())
            .await
            .context("connecting to Redis timed out")??;
        Ok(conn)
    }
}

/// `pg_ctl`: FAULTS_PG_CTL, or that of the newest PostgreSQL under /usr/lib/postgresql.
pub(super) fn pg_ctl() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FAULTS_PG_CTL") {
        return Ok(p.into());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: set FAULTS_PG_CTL")?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let p = e.path().join("bin/pg_ctl");
            p.exists().then_some((v, p))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .context("no pg_ctl found: set FAULTS_PG_CTL")
}
