use super::*;

#[tokio::test]
async fn tcp_connects() {
    let (l, addr) = listener().await;
    let r = probe(&Kind::Tcp, addr, ms(500)).await;
    assert_verdict(&r, Outcome::Up, "connected");
    let (mut conn, _) = l.accept().await.expect("accept");
    assert_closed_by_peer(&mut conn).await;
}

#[tokio::test]
async fn tcp_refused() {
    let r = probe(&Kind::Tcp, closed_port().await, ms(500)).await;
    assert_verdict(&r, Outcome::Down, "connect refused");
}

#[tokio::test]
async fn tcp_closes_with_a_reset_and_leaves_no_time_wait() {
    let (l, addr) = listener().await;
    let r = probe(&Kind::Tcp, addr, ms(500)).await;
    assert_verdict(&r, Outcome::Up, "connected");
    let (mut conn, _) = l.accept().await.expect("accept");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(ms(1000), conn.read(&mut buf))
        .await
        .expect("the reset arrives at once");
    let err = read.expect_err("a reset, not an orderly end of stream");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn tcp_over_ipv6() {
    let l = TcpListener::bind("[::1]:0").await.expect("bind ::1");
    let addr = l.local_addr().expect("local addr");
    let r = probe(&Kind::Tcp, addr, ms(500)).await;
    assert_verdict(&r, Outcome::Up, "connected");
    let (_, peer) = l.accept().await.expect("accept");
    assert!(peer.is_ipv6(), "{peer}");
}

/// A connect whose SYN goes unanswered (the server's accept queue is full, so its kernel drops
/// the SYN) is bounded by the timeout like any other stall.
#[tokio::test]
async fn tcp_connect_that_hangs_times_out() {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("inet");
    // Fill the queue: connects complete until it is full, then one hangs.
    let mut held = Vec::new();
    loop {
        match tokio::time::timeout(ms(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("connect: {e}"),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the accept queue never filled");
    }
    let r = probe(&Kind::Tcp, addr, ms(300)).await;
    assert_verdict(&r, Outcome::Down, "timeout after 300ms");
    assert_bounded(&r, ms(300));
}
