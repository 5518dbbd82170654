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
